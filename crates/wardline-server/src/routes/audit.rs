//! Routes for the compliance officer: search, access reports, exports,
//! checkpoints and proofs. Every one needs `audit_read` and is itself audited
//! (see `scope::ROUTES`).

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wardline_proto::audit::*;
use wardline_proto::{ErrorBody, OrgId, Permission};

use crate::authn::Authenticated;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiPath, ApiQuery};
use crate::request_audit::Audit;
use crate::state::AppState;
use wardline_core::audit::AuditScope;
use wardline_core::audit_reader::AuditService;
use wardline_core::audit_reader::MAX_PAGE;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(export))
        .routes(routes!(access_report))
        .routes(routes!(latest_checkpoint))
        .routes(routes!(inclusion_proof))
        .routes(routes!(consistency_proof))
}

fn tag_patient(reader: &AuditService, org: OrgId, scope: &AuditScope, q: &AuditQuery) {
    if let Some(p) = &q.patient {
        scope.patient(&reader.stored_patient(org, p));
    }
}

/// Search the organisation's audit trail, newest first.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn search(
    State(audit_reader): State<AuditService>,
    Authenticated(p): Authenticated,
    Audit(scope): Audit,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    p.authorize(Permission::AuditRead)?;
    tag_patient(&audit_reader, p.org_id, &scope, &q);
    Ok(Json(audit_reader.search(p.org_id, &q).await?))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FormatParam {
    /// `csv` or `jsonl`.
    #[param(inline)]
    format: ExportFormat,
}

const CSV_HEADER: [&str; 16] = [
    "seq",
    "at_ms",
    "org_id",
    "actor_kind",
    "actor_id",
    "device_id",
    "source_ip",
    "user_agent",
    "action",
    "target_type",
    "target_id",
    "patient_id",
    "outcome",
    "reason",
    // JSON text of the field changes (empty when there are none).
    "changes",
    "leaf_hash",
];

/// A cell as a spreadsheet will not execute it: user agents and reasons come
/// from outside, and `=cmd|…` in a CSV is a known attack on whoever opens it.
fn csv_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

fn csv_rows(events: &[AuditEvent], header: bool) -> std::io::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if header {
        w.write_record(CSV_HEADER)?;
    }
    for e in events {
        let v = serde_json::to_value(e).map_err(std::io::Error::other)?;
        let cells: Vec<String> = CSV_HEADER
            .iter()
            .map(|k| match &v[*k] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::Array(a) if a.is_empty() => String::new(),
                serde_json::Value::String(s) => csv_cell(s),
                other => other.to_string(),
            })
            .collect();
        w.write_record(&cells)?;
    }
    w.into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}

fn jsonl_rows(events: &[AuditEvent]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for e in events {
        serde_json::to_writer(&mut out, e).map_err(std::io::Error::other)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Export matching events as CSV or JSON Lines, streamed page by page
/// (newest first).
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", security(("bearer" = [])),
    params(FormatParam, AuditQuery),
    responses((status = 200, description = "CSV (`format=csv`) or JSON Lines (`format=jsonl`)", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"))),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn export(
    State(audit_reader): State<AuditService>,
    Authenticated(p): Authenticated,
    Audit(scope): Audit,
    ApiQuery(f): ApiQuery<FormatParam>,
    ApiQuery(mut q): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    p.authorize(Permission::AuditRead)?;
    tag_patient(&audit_reader, p.org_id, &scope, &q);
    q.limit = Some(MAX_PAGE);
    // Fail before the first byte on bad filters.
    wardline_core::audit_reader::AuditService::validate(&q)?;
    let reader = audit_reader;
    let org = p.org_id;
    let format = f.format;
    let pages = futures_util::stream::unfold(Some((q, true)), move |state| {
        let reader = reader.clone();
        async move {
            let (q, first) = state?;
            match reader.search(org, &q).await {
                Ok(page) => {
                    let bytes = match format {
                        ExportFormat::Csv => csv_rows(&page.events, first),
                        ExportFormat::Jsonl => jsonl_rows(&page.events),
                    };
                    let next = page.next_before.map(|b| {
                        let mut q = q.clone();
                        q.before_seq = Some(b);
                        (q, false)
                    });
                    Some((bytes.map(Bytes::from), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.message)), None)),
            }
        }
    });
    let (content_type, ext) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Jsonl => ("application/x-ndjson", "jsonl"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"wardline-audit.{ext}\""),
            ),
        ],
        Body::from_stream(pages),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct TimeRange {
    /// From (Unix ms, inclusive).
    from_ms: Option<i64>,
    /// Until (Unix ms, exclusive).
    to_ms: Option<i64>,
}

/// Who accessed this patient's information: every event in the patient's
/// context and a summary per person.
#[utoipa::path(get, path = "/api/v1/audit/patients/{patient_id}/access-report", tag = "audit", security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "the patient's id"), TimeRange),
    responses((status = 200, body = AccessReport), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn access_report(
    State(audit_reader): State<AuditService>,
    Authenticated(p): Authenticated,
    Audit(scope): Audit,
    ApiPath(patient_id): ApiPath<String>,
    ApiQuery(range): ApiQuery<TimeRange>,
) -> ApiResult<Json<AccessReport>> {
    p.authorize(Permission::AuditRead)?;
    if patient_id.is_empty() || patient_id.len() > 128 {
        return Err(ApiError::validation("patient_id must be 1 to 128 characters").into());
    }
    scope.patient(&audit_reader.stored_patient(p.org_id, &patient_id));
    Ok(Json(
        audit_reader
            .access_report(p.org_id, &patient_id, range.from_ms, range.to_ms)
            .await?,
    ))
}

/// The newest signed checkpoint (tree size, root, chain head, signature and
/// the public key to check it with).
#[utoipa::path(get, path = "/api/v1/audit/checkpoints/latest", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = Checkpoint), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn latest_checkpoint(
    State(audit_reader): State<AuditService>,
    Authenticated(p): Authenticated,
) -> ApiResult<Json<Checkpoint>> {
    p.authorize(Permission::AuditRead)?;
    Ok(Json(audit_reader.latest_checkpoint().await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct InclusionParams {
    /// The entry.
    seq: i64,
    /// Tree size to prove against (default: the latest checkpoint's).
    tree_size: Option<i64>,
}

/// RFC 9162 inclusion proof for one of the organisation's entries.
#[utoipa::path(get, path = "/api/v1/audit/proofs/inclusion", tag = "audit", security(("bearer" = [])),
    params(InclusionParams),
    responses((status = 200, body = InclusionProof), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn inclusion_proof(
    State(audit_reader): State<AuditService>,
    Authenticated(p): Authenticated,
    ApiQuery(q): ApiQuery<InclusionParams>,
) -> ApiResult<Json<InclusionProof>> {
    p.authorize(Permission::AuditRead)?;
    Ok(Json(
        audit_reader
            .inclusion_proof(p.org_id, q.seq, q.tree_size)
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ConsistencyParams {
    from_size: i64,
    to_size: i64,
}

/// RFC 9162 consistency proof: the log of `from_size` entries is a prefix of
/// the log of `to_size` entries.
#[utoipa::path(get, path = "/api/v1/audit/proofs/consistency", tag = "audit", security(("bearer" = [])),
    params(ConsistencyParams),
    responses((status = 200, body = ConsistencyProof), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn consistency_proof(
    State(audit_reader): State<AuditService>,
    Authenticated(p): Authenticated,
    ApiQuery(q): ApiQuery<ConsistencyParams>,
) -> ApiResult<Json<ConsistencyProof>> {
    p.authorize(Permission::AuditRead)?;
    Ok(Json(
        audit_reader
            .consistency_proof(q.from_size, q.to_size)
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_defused() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("curl/8.0"), "curl/8.0");
    }
}
