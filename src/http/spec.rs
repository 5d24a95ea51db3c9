//! The OpenAPI document as served: poem-openapi's, completed with what the service enforces but
//! the derive macros cannot say, so that every schema-valid request is one the service accepts
//! and clients (and schemathesis) can walk from one operation to the next:
//!
//! - calendar dates are `format: date` (poem-openapi says `naive-date`);
//! - `limit` parameters carry `minimum: 1` and the configured `maximum` (`limits.max_page_size`);
//! - `cursor` parameters carry the cursor's pattern;
//! - the upload form refuses properties other than `type` and `file`, and a review's
//!   corrections any field but the correctable ones;
//! - the batch form requires neither of its parts (any mix of `ktp` and `npwp` is a batch);
//! - OpenAPI links connect the ids that `POST /v1/documents`, `POST /v1/verifications`,
//!   `POST /v1/webhooks` and `POST /v1/batches` answer with the operations that take them.

use serde_json::{Value, json};

use super::paging::CURSOR_PATTERN;

/// `(status, link name, operation id, parameters, request body)` per creating operation.
type Link = (
    &'static str,
    &'static str,
    &'static str,
    Value,
    Option<Value>,
);

fn links() -> Vec<(&'static str, &'static str, Vec<Link>)> {
    let id = || json!({ "id": "$response.body#/id" });
    vec![
        (
            "/v1/documents",
            "post",
            vec![
                ("202", "GetDocument", "getDocument", id(), None),
                ("202", "GetDocumentFile", "getDocumentFile", id(), None),
                ("202", "EraseDocument", "eraseDocument", id(), None),
                (
                    "202",
                    "StartVerification",
                    "startVerification",
                    json!({}),
                    Some(json!({ "ktp_document_id": "$response.body#/id" })),
                ),
            ],
        ),
        (
            "/v1/verifications",
            "post",
            vec![
                ("202", "GetVerification", "getVerification", id(), None),
                (
                    "202",
                    "GetVerificationEvents",
                    "getVerificationEvents",
                    id(),
                    None,
                ),
                (
                    "202",
                    "SignalReviewDecision",
                    "signalReviewDecision",
                    id(),
                    None,
                ),
                (
                    "202",
                    "SignalSecondReview",
                    "signalSecondReview",
                    id(),
                    None,
                ),
                (
                    "202",
                    "SignalCancelReview",
                    "signalCancelReview",
                    id(),
                    None,
                ),
            ],
        ),
        (
            "/v1/webhooks",
            "post",
            vec![("201", "DeleteWebhook", "deleteWebhook", id(), None)],
        ),
        (
            "/v1/batches",
            "post",
            vec![(
                "202",
                "GetBatch",
                "getBatch",
                json!({ "id": "$response.body#/batch_id" }),
                None,
            )],
        ),
    ]
}

/// poem-openapi calls a calendar date `naive-date`; the standard format is `date`.
fn standard_formats(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("format").and_then(Value::as_str) == Some("naive-date") {
                map.insert("format".into(), json!("date"));
            }
            map.values_mut().for_each(standard_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(standard_formats),
        _ => {}
    }
}

/// Completes `spec` (poem-openapi's JSON) as the module docs say.
pub fn complete(mut spec: Value, max_page_size: u32) -> Value {
    standard_formats(&mut spec);
    if let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) {
        for ops in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in ops.values_mut() {
                let params = op.get_mut("parameters").and_then(Value::as_array_mut);
                for p in params.into_iter().flatten() {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                    let (min_max, pattern) = match name {
                        "limit" => (true, false),
                        "cursor" => (false, true),
                        _ => continue,
                    };
                    let Some(schema) = p.get_mut("schema").and_then(Value::as_object_mut) else {
                        continue;
                    };
                    if min_max {
                        schema.insert("minimum".into(), json!(1));
                        schema.insert("maximum".into(), json!(max_page_size));
                    }
                    if pattern {
                        schema.insert("pattern".into(), json!(CURSOR_PATTERN));
                    }
                }
            }
        }
        for (path, method, links) in links() {
            let Some(responses) = paths
                .get_mut(path)
                .and_then(|p| p.get_mut(method))
                .and_then(|o| o.get_mut("responses"))
            else {
                continue;
            };
            for (status, name, operation, parameters, body) in links {
                let Some(resp) = responses.get_mut(status).and_then(Value::as_object_mut) else {
                    continue;
                };
                let mut link = json!({ "operationId": operation });
                if parameters.as_object().is_some_and(|p| !p.is_empty()) {
                    link["parameters"] = parameters;
                }
                if let Some(body) = body {
                    link["requestBody"] = body;
                }
                let all = resp.entry("links").or_insert_with(|| json!({}));
                all[name] = link;
            }
        }
    }
    // Corrections name their fields; any other is refused (`deny_unknown_fields`).
    if let Some(c) = spec
        .pointer_mut("/components/schemas/Corrections")
        .and_then(Value::as_object_mut)
    {
        c.insert("additionalProperties".into(), json!(false));
    }
    let upload_form = "/paths/~1v1~1documents/post/requestBody/content/multipart~1form-data/schema";
    if let Some(form) = spec.pointer_mut(upload_form).and_then(Value::as_object_mut) {
        form.insert("additionalProperties".into(), json!(false));
    }
    // A batch may hold any mix of `ktp` and `npwp` parts, none of either (and a part with
    // another name is refused on its own, in the 202).
    let batch_form = "/paths/~1v1~1batches/post/requestBody/content/multipart~1form-data/schema";
    if let Some(form) = spec.pointer_mut(batch_form).and_then(Value::as_object_mut) {
        form.remove("required");
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_bounds_patterns_links_and_closes_the_upload_form() {
        let spec = json!({
            "paths": {
                "/v1/documents": {
                    "get": {"parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    ]},
                    "post": {
                        "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object"}}}},
                        "responses": {"202": {"description": "x"}},
                    },
                },
            },
        });
        let done = complete(spec, 50);
        let params = &done["paths"]["/v1/documents"]["get"]["parameters"];
        assert_eq!(params[0]["schema"]["minimum"], 1);
        assert_eq!(params[0]["schema"]["maximum"], 50);
        assert_eq!(params[1]["schema"]["pattern"], CURSOR_PATTERN);
        let links = &done["paths"]["/v1/documents"]["post"]["responses"]["202"]["links"];
        assert_eq!(links["GetDocument"]["operationId"], "getDocument");
        assert_eq!(
            links["GetDocument"]["parameters"]["id"],
            "$response.body#/id"
        );
        assert_eq!(
            links["StartVerification"]["requestBody"]["ktp_document_id"],
            "$response.body#/id"
        );
        let form = &done["paths"]["/v1/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]
            ["schema"];
        assert_eq!(form["additionalProperties"], false);
    }
}
