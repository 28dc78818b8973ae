//! `/v1/leaders`: list, current leader (and watch: `?wait=` until the leader's token differs
//! from `?token=`), campaign and resign. Campaigns are locks under `leaders/`, so acquiring,
//! holding and leases are the handlers of `locks`, with [`Kind::Leader`].

use axum::Json;
use axum::extract::{Path, State};
use podsignal_client::{FencingToken, LockStatus};
use podsignal_proto::api::LeaderView;
use serde::Deserialize;

use super::error::{ApiQuery, parse_name};
use super::locks::{Kind, Scope, acquire_lease, hold, release_lease, renew_lease};
use super::{ApiError, AppState, Routes};

/// `/v1/leaders`.
pub struct Leaders;

impl Scope for Leaders {
    const KIND: Kind = Kind::Leader;
}

pub fn routes(r: Routes) -> Routes {
    r.get("/v1/leaders", list)
        .get("/v1/leaders/{name}", show)
        .post("/v1/leaders/{name}", acquire_lease::<Leaders>)
        .delete("/v1/leaders/{name}", release_lease::<Leaders>)
        .post("/v1/leaders/{name}/hold", hold::<Leaders>)
        .post("/v1/leaders/{name}/renew", renew_lease::<Leaders>)
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<LockStatus>>, ApiError> {
    Ok(Json(state.volume().list_leaders()?))
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

async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<LeaderView>, ApiError> {
    let name = parse_name("leader", &name)?;
    let volume = state.volume();
    let known = match q.token.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(t) => Some(Some(FencingToken(t.parse().map_err(|_| {
            ApiError::bad_request(format!("token {t:?}: expected a number or none"))
        })?))),
    };
    let leader = match state.wait_param(q.wait.as_deref())? {
        None => volume.leader(&name)?,
        Some(wait) => {
            let known = match known {
                Some(k) => k,
                None => volume.leader(&name)?.map(|h| h.token),
            };
            let _slot = state.waiter()?;
            state
                .until_shutdown(volume.wait_leader_change(&name, known, Some(wait)))
                .await?
        }
    };
    Ok(Json(LeaderView { name, leader }))
}
