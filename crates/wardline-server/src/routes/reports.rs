//! Analytics routes (`/api/v1/reports/…`): thin; the aggregation is
//! `wardline_core::reports` over the store's SQL.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wardline_core::reports::ReportService;
use wardline_proto::reports::{ActivityReport, ReportRange};
use wardline_proto::{ErrorBody, Permission};

use crate::authn::Authenticated;
use crate::error::ApiResult;
use crate::http::ApiQuery;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(activity))
}

/// Messages per day by staff role and department, response times by clinical
/// role and department, STAT/urgent escalations, active users and devices,
/// and patient texting, over a time range (UTC days). Counts only.
#[utoipa::path(get, path = "/api/v1/reports/activity", tag = "reports", security(("bearer" = [])),
    params(ReportRange),
    responses((status = 200, body = ActivityReport), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn activity(
    State(reports): State<ReportService>,
    Authenticated(p): Authenticated,
    ApiQuery(range): ApiQuery<ReportRange>,
) -> ApiResult<Json<ActivityReport>> {
    p.authorize(Permission::RoutingReports)?;
    Ok(Json(reports.activity(p.org_id, range).await?))
}
