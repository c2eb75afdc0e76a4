//! `crm.gateway.v1.GatewayAdminService`: what the gateway routes to, for
//! operators. Served by the gateway itself (never proxied), admin only.

use std::sync::Arc;

use crm_proto::gateway::{
    ListUpstreamsRequest, ListUpstreamsResponse, Replica, ReplicaState as ProtoState, Upstream,
    gateway_admin_service_server::GatewayAdminService,
};
use crm_shared::auth::{Role, RoleRules};
use tonic::{Request, Response, Status};

use crate::upstream::{self, ReplicaState};

/// Who may call what: replica addresses are internal, so admins only.
pub const ROLE_RULES: RoleRules = &[("ListUpstreams", &[Role::Admin])];

/// Answers from the gateway's live view of its upstreams.
pub struct Admin {
    pub upstreams: Vec<Arc<upstream::Upstream>>,
}

#[tonic::async_trait]
impl GatewayAdminService for Admin {
    async fn list_upstreams(
        &self,
        _request: Request<ListUpstreamsRequest>,
    ) -> Result<Response<ListUpstreamsResponse>, Status> {
        let mut upstreams: Vec<Upstream> = self.upstreams.iter().map(|u| describe(u)).collect();
        upstreams.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(ListUpstreamsResponse {
            upstreams,
            gateway_version: crm_shared::version().to_owned(),
        }))
    }
}

fn describe(upstream: &upstream::Upstream) -> Upstream {
    let replicas = upstream
        .replicas_with_state()
        .into_iter()
        .map(|(replica, state)| Replica {
            address: replica.addr().to_string(),
            state: match state {
                ReplicaState::Serving => ProtoState::Serving,
                ReplicaState::Ejected => ProtoState::Ejected,
                ReplicaState::Down => ProtoState::Down,
            } as i32,
            version: replica.version(),
        })
        .collect();
    Upstream {
        name: upstream.name().to_owned(),
        services: upstream.services().to_vec(),
        replicas,
    }
}
