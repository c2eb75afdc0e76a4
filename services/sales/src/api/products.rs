//! The product catalogue.

use crm_proto::sales as pb;
use crm_shared::{
    auth::admitted,
    convert::{parse_etag, parse_name, required},
    idempotency::IdempotencyKey,
    store::{ListPlan, ListRequest},
    validate::update_paths,
};
use tonic::{Request, Response, Status};

use super::{
    SalesApi,
    convert::{product_draft, product_message},
};
use crate::{domain, store};

pub(super) async fn create_product(
    api: &SalesApi,
    request: Request<pb::CreateProductRequest>,
) -> Result<Response<pb::Product>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let request_id = IdempotencyKey::of(&r.request_id, &r)?;
    let mut draft = product_draft(&required(r.product, "product")?);
    draft.normalize_and_check("product")?;
    let created = api
        .store
        .create_product(&tenant, &principal.subject, draft, request_id)
        .await?;
    Ok(Response::new(product_message(&created)))
}

pub(super) async fn get_product(
    api: &SalesApi,
    request: Request<pb::GetProductRequest>,
) -> Result<Response<pb::Product>, Status> {
    let (_, tenant) = admitted(&request)?;
    let id = parse_name(&request.get_ref().name, "products", "name")?;
    Ok(Response::new(product_message(
        &api.store.get_product(&tenant, id).await?,
    )))
}

pub(super) async fn list_products(
    api: &SalesApi,
    request: Request<pb::ListProductsRequest>,
) -> Result<Response<pb::ListProductsResponse>, Status> {
    let (_, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let plan = ListPlan::new(
        &api.page_tokens,
        ListRequest {
            resource: "products",
            schema: &store::PRODUCT_FILTER,
            orderable: store::PRODUCT_ORDER,
            filter: &r.filter,
            order_by: &r.order_by,
            show_deleted: false,
            page_size: r.page_size,
            page_token: &r.page_token,
            include_total_size: r.include_total_size,
        },
    )?;
    let page = api.store.list_products(&tenant, plan.query.clone()).await?;
    let products = &page.items;
    Ok(Response::new(pb::ListProductsResponse {
        next_page_token: plan.next_page_token(&api.page_tokens, &page),
        products: products.iter().map(product_message).collect(),
        total_size: page.total_size(),
    }))
}

pub(super) async fn update_product(
    api: &SalesApi,
    request: Request<pb::UpdateProductRequest>,
) -> Result<Response<pb::Product>, Status> {
    let (principal, tenant) = admitted(&request)?;
    let r = request.into_inner();
    let message = required(r.product, "product")?;
    let id = parse_name(&message.name, "products", "product.name")?;
    let expected = parse_etag(&message.etag, "product.etag")?;
    let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
    let paths = update_paths(&mask, domain::product::WRITABLE_FIELDS)?;
    let updated = api
        .store
        .update_product(
            &tenant,
            &principal.subject,
            id,
            expected,
            &paths,
            &product_draft(&message),
        )
        .await?;
    Ok(Response::new(product_message(&updated)))
}
