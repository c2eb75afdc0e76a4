//! Erasure: a contact erased through contacts is confirmed by sales,
//! marketing, support and reporting, and the erasure status says so; the
//! erased person's view holds nothing personal.

use crm_proto::{
    contacts::EraseContactRequest,
    reporting::{GetErasureStatusRequest, ListErasureStatusesRequest},
};
use tonic::Code;

use crate::{harness::*, history::*};

db_test!(erasure_status, erasure_on);
async fn erasure_on(backend: Backend) {
    let Some(suite) = Suite::start(backend).await else {
        return;
    };
    let history = History::make(&suite).await;
    suite.settled().await;
    let ada = history.ada.name.clone();
    let mut admin = suite.reporting(TENANT, ADMIN);
    let never = admin
        .get_erasure_status(GetErasureStatusRequest {
            contact: ada.clone(),
        })
        .await
        .expect_err("nothing erased yet");
    assert_eq!(never.code(), Code::NotFound);

    suite
        .contacts(TENANT, ADMIN)
        .erase_contact(EraseContactRequest { name: ada.clone() })
        .await
        .must("EraseContact");
    let mut status = None;
    eventually_within(60, "every service confirms the erasure", async || {
        let Ok(now) = admin
            .get_erasure_status(GetErasureStatusRequest {
                contact: ada.clone(),
            })
            .await
        else {
            return false;
        };
        let now = now.into_inner();
        let done = now.complete;
        status = Some(now);
        done
    })
    .await;
    let status = status.expect("a status");
    let services: Vec<&str> = status
        .confirmations
        .iter()
        .map(|c| c.service.as_str())
        .collect();
    assert_eq!(services, ["marketing", "reporting", "sales", "support"]);
    assert!(status.pending_services.is_empty(), "{status:?}");
    assert!(!status.overdue);
    assert_eq!(status.contact, ada);
    assert!(status.erase_time.is_some());
    assert!(
        status
            .confirmations
            .iter()
            .all(|c| c.confirm_time.is_some()),
        "{status:?}"
    );
    // Support erased Ada's two tickets; reporting her contact and tickets.
    let count = |service: &str| {
        status
            .confirmations
            .iter()
            .find(|c| c.service == service)
            .map(|c| c.erased_resources)
            .unwrap_or_default()
    };
    assert!(count("support") >= 2, "{status:?}");
    assert_eq!(count("reporting"), 3, "Ada and her two tickets: {status:?}");

    let listed = admin
        .list_erasure_statuses(ListErasureStatusesRequest {
            page_size: 10,
            page_token: String::new(),
            only_overdue: false,
        })
        .await
        .must("ListErasureStatuses");
    assert_eq!(listed.erasures, std::slice::from_ref(&status));
    assert!(listed.next_page_token.is_empty());
    let overdue = admin
        .list_erasure_statuses(ListErasureStatusesRequest {
            page_size: 10,
            page_token: String::new(),
            only_overdue: true,
        })
        .await
        .must("ListErasureStatuses overdue");
    assert!(overdue.erasures.is_empty());

    // Nothing personal remains in her view, whatever is asked.
    suite.settled().await;
    let mut reporting = suite.reporting(TENANT, MANAGER);
    let v = view(&mut reporting, &ada).await;
    assert!(v.erased, "{v:?}");
    assert_eq!(
        (v.display_name.as_str(), v.email.as_str()),
        ("", ""),
        "{v:?}"
    );
    assert!(v.timeline.is_empty(), "{:?}", v.timeline);
    assert!(v.last_engagement.is_none(), "{:?}", v.last_engagement);
    assert!(v.next_page_token.is_empty());
    for kind in ["contact", "email", "deal", "ticket"] {
        let page = view_page(&mut reporting, &ada, 10, "", &[kind])
            .await
            .must_view();
        assert!(page.timeline.is_empty(), "{kind}: {:?}", page.timeline);
    }
    assert!(
        v.open_tickets.iter().all(|t| t.subject != "Invoice copy"),
        "{:?}",
        v.open_tickets
    );
    // Bob is untouched.
    let bob = view(&mut reporting, &history.bob.name).await;
    assert!(!bob.erased);
    assert_eq!(bob.display_name, "Bob Builder");
    assert!(!bob.timeline.is_empty());

    // Erasures are for admins.
    let denied = reporting
        .get_erasure_status(GetErasureStatusRequest {
            contact: ada.clone(),
        })
        .await
        .expect_err("a manager");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = admin
        .get_erasure_status(GetErasureStatusRequest {
            contact: "people/1".into(),
        })
        .await
        .expect_err("not a contact");
    assert_invalid_field(&bad, "contact", "a bad name");
}

trait MustView {
    fn must_view(self) -> crm_proto::reporting::CustomerView;
}

impl MustView for Result<crm_proto::reporting::CustomerView, tonic::Status> {
    fn must_view(self) -> crm_proto::reporting::CustomerView {
        self.unwrap_or_else(|s| panic!("GetCustomerView: {s:?}"))
    }
}
