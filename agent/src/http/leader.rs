//! `/v1/leaders`: list, the campaign's state (and watch: `?wait=` until the leader's token
//! differs from `?token=`), campaign and resign. Campaigns are locks under `leaders/`, so
//! acquiring, holding and leases are the handlers of `locks`, with [`Scope::Leader`].

use axum::Json;
use axum::extract::State;
use podsignal_client::{Coordinator, FencingToken, HolderRecord, LockStatus, Scope};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{ApiPath, ApiQuery, parse_name};
use super::locks::{Scoped, acquire_lease, docs, hold, list, release_lease, renew_lease};
use super::params::Dur;
use super::{Answer, ApiError, AppState, Doc, Routes, schema};

/// `/v1/leaders`.
pub struct Leaders;

impl Scoped for Leaders {
    const SCOPE: Scope = Scope::Leader;
}

pub fn routes(r: Routes) -> Routes {
    r.get(
        "/v1/leaders",
        list::<Leaders>,
        Doc::new(
            "Every leader campaign, as a lock.",
            Answer::Json(200, schema::<Vec<LockStatus>>),
        ),
    )
    .get(
        "/v1/leaders/{name}",
        show,
        Doc::new(
            "A campaign as a lock, plus leader: the leader, or null; with wait, long-poll until the leader's token differs from token.",
            Answer::Json(200, schema::<LeaderView>),
        )
        .query(schema::<ShowQuery>)
        .errors(&[408]),
    )
    .post("/v1/leaders/{name}", acquire_lease::<Leaders>, docs::ACQUIRE_LEASE)
    .delete("/v1/leaders/{name}", release_lease::<Leaders>, docs::RELEASE_LEASE)
    .post("/v1/leaders/{name}/hold", hold::<Leaders>, docs::HOLD)
    .post("/v1/leaders/{name}/renew", renew_lease::<Leaders>, docs::RENEW_LEASE)
}

/// A campaign: its lock status, and its leader.
#[derive(Debug, Serialize, JsonSchema)]
struct LeaderView {
    /// The campaign as a lock.
    #[serde(flatten)]
    status: LockStatus,
    /// The leader while it leads, else `null`.
    leader: Option<HolderRecord>,
}

/// Query of `GET /v1/leaders/{name}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// Wait until the leader differs from `token` (capped by --max-wait; 408 after).
    wait: Option<Dur>,
    /// The leader's token the caller knows, or `none` (no leader). Default: the current one.
    token: Option<Known>,
}

/// `token=`: a fencing token or `none`.
#[derive(Debug, Clone, Copy)]
struct Known(Option<FencingToken>);

impl<'de> Deserialize<'de> for Known {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Known, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        match s.as_ref() {
            "none" => Ok(Known(None)),
            t => t
                .parse()
                .map(|n| Known(Some(FencingToken(n))))
                .map_err(|_| {
                    serde::de::Error::custom(format!("token {t:?}: expected a number or none"))
                }),
        }
    }
}

impl JsonSchema for Known {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "KnownToken".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(none|[0-9]{1,19})$",
            "description": "A fencing token, or none.",
        })
    }
}

/// The campaign as a lock status, plus `leader`: the holder while it leads, else `null`.
async fn show(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<LeaderView>, ApiError> {
    let name = parse_name("leader", &name)?;
    let volume = state.volume();
    let known = q.token.map(|k| k.0);
    if let Some(wait) = state.wait_param(q.wait) {
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
    Ok(Json(LeaderView {
        leader: status.current_holder(),
        status,
    }))
}
