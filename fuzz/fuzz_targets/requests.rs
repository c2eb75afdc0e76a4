//! Request messages as they arrive off the wire: every request type a client
//! can send is decoded from the same bytes (what the strict codec does before
//! it maps a failure to INVALID_ARGUMENT); decoding answers a message or an
//! error, never a panic, and a decoded message encodes again. The generated
//! types are listed by hand; every method's input type in the descriptors is
//! also decoded dynamically, so a new RPC is fuzzed by construction.
#![no_main]

use std::sync::LazyLock;

use crm_proto::{audit, contacts, events, sales};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

/// The input type of every method of every service in the suite.
static INPUTS: LazyLock<Vec<MessageDescriptor>> = LazyLock::new(|| {
    let pool = DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).expect("the descriptors");
    pool.services()
        .flat_map(|service| service.methods().map(|method| method.input()).collect::<Vec<_>>())
        .collect()
});

fn decode<M: Message + Default>(data: &[u8]) {
    if let Ok(message) = M::decode(data) {
        let _ = message.encode_to_vec();
    }
}

macro_rules! every {
    ($data:expr; $($module:ident :: $message:ident),* $(,)?) => {
        $( decode::<$module::$message>($data); )*
    };
}

fuzz_target!(|data: &[u8]| {
    every!(data;
        contacts::CreateContactRequest, contacts::GetContactRequest, contacts::ListContactsRequest,
        contacts::UpdateContactRequest, contacts::DeleteContactRequest, contacts::UndeleteContactRequest,
        contacts::SearchContactsRequest, contacts::BatchGetContactsRequest, contacts::FindDuplicatesRequest,
        contacts::MergeContactsRequest, contacts::ImportContactsRequest, contacts::ExportContactsRequest,
        contacts::ListTimelineRequest, contacts::ExportContactDataRequest, contacts::EraseContactRequest,
        contacts::CreateCompanyRequest, contacts::GetCompanyRequest, contacts::ListCompaniesRequest,
        contacts::UpdateCompanyRequest, contacts::DeleteCompanyRequest, contacts::UndeleteCompanyRequest,
        contacts::CreateActivityRequest, contacts::GetActivityRequest, contacts::ListActivitiesRequest,
        contacts::UpdateActivityRequest, contacts::DeleteActivityRequest,
        sales::CreateLeadRequest, sales::GetLeadRequest, sales::ListLeadsRequest, sales::UpdateLeadRequest,
        sales::DeleteLeadRequest, sales::UndeleteLeadRequest, sales::AssignLeadRequest, sales::ConvertLeadRequest,
        sales::CreateAssignmentRuleRequest, sales::ListAssignmentRulesRequest, sales::DeleteAssignmentRuleRequest,
        sales::CreateScoringRuleRequest, sales::ListScoringRulesRequest, sales::DeleteScoringRuleRequest,
        sales::RescoreLeadsRequest, sales::CreatePipelineRequest, sales::GetPipelineRequest,
        sales::ListPipelinesRequest, sales::UpdatePipelineRequest, sales::DeletePipelineRequest,
        sales::CreateOpportunityRequest, sales::GetOpportunityRequest, sales::ListOpportunitiesRequest,
        sales::UpdateOpportunityRequest, sales::DeleteOpportunityRequest, sales::UndeleteOpportunityRequest,
        sales::CreateProductRequest, sales::GetProductRequest, sales::ListProductsRequest,
        sales::UpdateProductRequest, sales::CreateTaskRequest, sales::GetTaskRequest, sales::ListTasksRequest,
        sales::UpdateTaskRequest, sales::DeleteTaskRequest, sales::GetForecastRequest,
        sales::AnalyzePipelineRequest,
        events::StreamEventsRequest, events::ListConsumersRequest, events::ListParkedEventsRequest,
        events::RetryParkedEventRequest, events::DiscardParkedEventRequest,
        audit::ListAuditEntriesRequest,
    );
    for input in INPUTS.iter() {
        if let Ok(message) = DynamicMessage::decode(input.clone(), data) {
            let _ = message.encode_to_vec();
        }
    }
});
