//! What marketing asks of the sales service: a journey step's task or lead.
//! Each create carries the step's effect key as its request id, so a step
//! run again after a stop creates nothing more.

use crm_proto::sales::{
    CreateLeadRequest, CreateTaskRequest, Lead, Task, sales_service_client::SalesServiceClient,
};
use crm_shared::{
    client::{Credentials, retry_idempotent, upstream_error},
    error::ApiError,
};
use tonic::transport::Channel;
use uuid::Uuid;

/// The sales service, as marketing uses it.
#[derive(Clone)]
pub struct SalesDesk {
    channel: Channel,
}

impl SalesDesk {
    /// Sales at `channel`.
    pub fn new(channel: Channel) -> Self {
        Self { channel }
    }

    /// Creates `task` once for `request_id`; its name.
    pub async fn create_task(
        &self,
        credentials: &Credentials,
        request_id: Uuid,
        task: Task,
    ) -> Result<String, ApiError> {
        retry_idempotent(|| {
            let mut client = SalesServiceClient::new(self.channel.clone());
            let request = credentials.request(CreateTaskRequest {
                task: Some(task.clone()),
                request_id: request_id.to_string(),
            });
            async move { client.create_task(request).await }
        })
        .await
        .map(|created| created.into_inner().name)
        .map_err(|status| upstream_error("sales", status))
    }

    /// Creates `lead` once for `request_id`; its name.
    pub async fn create_lead(
        &self,
        credentials: &Credentials,
        request_id: Uuid,
        lead: Lead,
    ) -> Result<String, ApiError> {
        retry_idempotent(|| {
            let mut client = SalesServiceClient::new(self.channel.clone());
            let request = credentials.request(CreateLeadRequest {
                lead: Some(lead.clone()),
                request_id: request_id.to_string(),
            });
            async move { client.create_lead(request).await }
        })
        .await
        .map(|created| created.into_inner().name)
        .map_err(|status| upstream_error("sales", status))
    }
}
