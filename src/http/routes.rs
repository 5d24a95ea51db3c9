//! The service's routes as templates (`/v1/documents/{id}`) with their methods, read once
//! from the OpenAPI document plus the few routes outside it. Two things need them: metrics
//! labels, which must stay a bounded set whatever paths clients invent (an unmatched path is
//! `unmatched`, an unknown method `other`), and `405 Method Not Allowed` answers, which must
//! say in `Allow` which methods the path does take (RFC 9110).

use poem::http::Method;

/// Methods that get a label of their own; any other is `other`.
const LABELLED_METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

#[derive(Debug, Clone)]
struct Route {
    template: String,
    segments: Vec<Option<String>>,
    /// A prefix route (`/docs` serves everything below it).
    prefix: bool,
    methods: Vec<Method>,
}

impl Route {
    fn new(template: &str, prefix: bool) -> Self {
        let segments = split(template)
            .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_string()))
            .collect();
        Self {
            template: template.to_string(),
            segments,
            prefix,
            methods: Vec::new(),
        }
    }

    fn matches(&self, path: &[&str]) -> bool {
        let n = self.segments.len();
        if path.len() < n || (!self.prefix && path.len() != n) {
            return false;
        }
        self.segments
            .iter()
            .zip(path)
            .all(|(want, got)| want.as_deref().is_none_or(|w| w == *got))
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Every route the service answers, by template.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// The paths and methods of an OpenAPI document (`paths.{template}.{method}`).
    pub fn from_spec(spec: &serde_json::Value) -> Self {
        let mut table = Self::default();
        if let Some(paths) = spec.get("paths").and_then(|p| p.as_object()) {
            for (template, ops) in paths {
                let methods = ops.as_object().into_iter().flat_map(|o| o.keys());
                for m in methods {
                    if let Ok(method) = m.to_ascii_uppercase().parse::<Method>() {
                        table.add(template, method);
                    }
                }
            }
        }
        table
    }

    /// Adds `method` on `template` (exact path).
    pub fn add(&mut self, template: &str, method: Method) -> &mut Self {
        self.add_route(template, method, false)
    }

    /// Adds `method` on `template` and everything below it.
    pub fn add_prefix(&mut self, template: &str, method: Method) -> &mut Self {
        self.add_route(template, method, true)
    }

    fn add_route(&mut self, template: &str, method: Method, prefix: bool) -> &mut Self {
        let i = match self
            .routes
            .iter()
            .position(|r| r.template == template && r.prefix == prefix)
        {
            Some(i) => i,
            None => {
                self.routes.push(Route::new(template, prefix));
                self.routes.len() - 1
            }
        };
        if !self.routes[i].methods.contains(&method) {
            self.routes[i].methods.push(method);
        }
        self
    }

    /// The best route for `path`: exact routes first, then the most specific one (fewest
    /// parameters), so `/v1/reviews` wins over a `/v1/{x}`.
    fn find(&self, path: &str) -> Option<&Route> {
        let parts: Vec<&str> = split(path).collect();
        self.routes
            .iter()
            .filter(|r| r.matches(&parts))
            .min_by_key(|r| (r.prefix, r.segments.iter().filter(|s| s.is_none()).count()))
    }

    /// The template of `path`, or `unmatched`: a label from a fixed set.
    pub fn label(&self, path: &str) -> &str {
        self.find(path).map_or("unmatched", |r| r.template.as_str())
    }

    /// The methods `path` takes, for an `Allow` header (`HEAD` with `GET`); `None` for a path
    /// that is no route at all.
    pub fn allow(&self, path: &str) -> Option<String> {
        let route = self.find(path)?;
        let takes = |m: &Method| {
            route.methods.contains(m)
                || (*m == Method::HEAD && route.methods.contains(&Method::GET))
        };
        let methods: Vec<&str> = LABELLED_METHODS
            .iter()
            .filter(|m| takes(m))
            .map(Method::as_str)
            .collect();
        Some(methods.join(", "))
    }
}

/// A method's label: one of a fixed set, or `other`.
pub fn method_label(method: &Method) -> &'static str {
    LABELLED_METHODS
        .iter()
        .find(|m| *m == method)
        .map_or("other", Method::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let spec = serde_json::json!({"paths": {
            "/v1/documents": {"get": {}, "post": {}},
            "/v1/documents/{id}": {"get": {}, "delete": {}},
            "/v1/documents/{id}/file": {"get": {}},
            "/v1/reviews": {"get": {}},
        }});
        let mut t = RouteTable::from_spec(&spec);
        t.add("/metrics", Method::GET)
            .add_prefix("/docs", Method::GET);
        t
    }

    #[test]
    fn labels_are_templates_and_nothing_else() {
        let t = table();
        assert_eq!(
            t.label("/v1/documents/0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b/file"),
            "/v1/documents/{id}/file"
        );
        assert_eq!(
            t.label("/v1/documents/3201234567890001"),
            "/v1/documents/{id}"
        );
        assert_eq!(t.label("/v1/reviews"), "/v1/reviews");
        assert_eq!(t.label("/docs/oauth-receiver.html"), "/docs");
        for invented in [
            "/",
            "/v1/budi.santoso@example.co.id",
            "/a/b/c",
            "/v1/documents/x/y/z",
        ] {
            assert_eq!(t.label(invented), "unmatched", "{invented}");
        }
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&"PURGE".parse().unwrap()), "other");
    }

    #[test]
    fn allow_lists_the_methods_of_the_route() {
        let t = table();
        assert_eq!(t.allow("/v1/documents").as_deref(), Some("GET, HEAD, POST"));
        assert_eq!(
            t.allow("/v1/documents/abc").as_deref(),
            Some("GET, HEAD, DELETE")
        );
        assert_eq!(t.allow("/nowhere"), None);
    }
}
