//! `/v1/leaders`: list, the campaign's state (and watch: `?wait=` until the leader's token
//! differs from `?token=`), campaign and resign. Campaigns are locks under `leaders/`, so
//! acquiring, holding and leases are the handlers of `locks`, with [`Scope::Leader`].

use axum::Json;
use axum::extract::State;
use podsignal_client::{Coordinator, FencingToken, LockStatus, Scope};
use serde::Deserialize;

use super::error::{ApiPath, ApiQuery, parse_name};
use super::locks::{Scoped, acquire_lease, hold, list, release_lease, renew_lease};
use super::{ApiError, AppState, Routes};

/// `/v1/leaders`.
pub struct Leaders;

impl Scoped for Leaders {
    const SCOPE: Scope = Scope::Leader;
}

pub fn routes(r: Routes) -> Routes {
    r.get("/v1/leaders", list::<Leaders>)
        .get("/v1/leaders/{name}", show)
        .post("/v1/leaders/{name}", acquire_lease::<Leaders>)
        .delete("/v1/leaders/{name}", release_lease::<Leaders>)
        .post("/v1/leaders/{name}/hold", hold::<Leaders>)
        .post("/v1/leaders/{name}/renew", renew_lease::<Leaders>)
}

/// Query of `GET /v1/leaders/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// Wait until the leader differs from `token`.
    wait: Option<String>,
    /// The leader's token the caller knows (`none`: no leader). Default: the current one.
    token: Option<String>,
}

/// The campaign as a lock status, plus `leader`: the holder while it leads, else `null`.
async fn show(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = parse_name("leader", &name)?;
    let volume = state.volume();
    let known = match q.token.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(t) => Some(Some(FencingToken(t.parse().map_err(|_| {
            ApiError::bad_request(format!("token {t:?}: expected a number or none"))
        })?))),
    };
    if let Some(wait) = state.wait_param(q.wait.as_deref())? {
        let known = match known {
            Some(k) => k,
            None => volume.leader(&name).await?.map(|h| h.token),
        };
        let _slot = state.waiter()?;
        state
            .until_shutdown(volume.wait_leader_change(&name, known, Some(wait)))
            .await?;
    }
    let status = volume.lock_status(Scope::Leader, &name).await?;
    Ok(Json(leader_view(&status)))
}

/// A campaign's status with `leader` beside it (the same document serves both readers).
fn leader_view(status: &LockStatus) -> serde_json::Value {
    let mut view = serde_json::to_value(status).unwrap_or_default();
    view["leader"] = serde_json::to_value(status.current_holder()).unwrap_or_default();
    view
}
