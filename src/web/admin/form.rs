//! Form bodies of the Web Manager: URL-encoded, or multipart when a file is chosen (metadata,
//! certificate, key). Every value is text; a chosen file's content replaces the text field of
//! the same name. Bounded by the router's body limit (1 MiB and a little).

use std::collections::HashMap;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The fields of a submitted form (the last value of a name wins; files by their field name).
#[derive(Default)]
pub struct FormData(pub HashMap<String, String>);

impl std::fmt::Debug for FormData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Forms carry passwords and private keys: only the field names.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl FormData {
    /// The field's value, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(|s| s.trim()).unwrap_or("")
    }

    /// The field's value untrimmed (passwords).
    pub fn raw(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }

    /// `Some(value)` when the field was sent (even empty).
    pub fn opt(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|s| s.trim().to_string())
    }

    /// A checkbox: on when sent with any value.
    pub fn checked(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn version(&self) -> Option<i64> {
        self.get("version").parse().ok()
    }
}

/// The error with its causes (multer says little at the top).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn bad(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_string()).into_response()
}

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        let mut out = HashMap::new();
        if multipart {
            let mut m = Multipart::from_request(req, state)
                .await
                .map_err(|e| bad(&format!("the form could not be read: {e}")))?;
            let mut files: Vec<(String, String)> = Vec::new();
            while let Some(field) = m
                .next_field()
                .await
                .map_err(|e| bad(&format!("the form could not be read: {}", chain(&e))))?
            {
                let Some(name) = field.name().map(str::to_string) else {
                    continue;
                };
                // A file input sends a part with a filename (empty when no file was chosen): it
                // never overwrites the text area of the same name unless a file was chosen.
                let is_file = field.file_name().is_some();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| bad(&format!("the form could not be read: {}", chain(&e))))?;
                if field_is_empty_file(is_file, &bytes) {
                    continue;
                }
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| bad("a chosen file is not text (UTF-8)"))?;
                if is_file {
                    files.push((name, text));
                } else {
                    out.insert(name, text);
                }
            }
            // A chosen file wins over the text area of the same name.
            for (name, text) in files {
                out.insert(name, text);
            }
        } else {
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e| bad(&format!("the form could not be read: {e}")))?;
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| bad(&format!("the form could not be read: {e}")))?;
            out.extend(pairs);
        }
        Ok(FormData(out))
    }
}

fn field_is_empty_file(is_file: bool, bytes: &[u8]) -> bool {
    is_file && bytes.is_empty()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::FromRequest;
    use axum::http::Request;

    use super::FormData;

    #[tokio::test]
    async fn an_empty_file_input_keeps_the_text_area() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"response\"\r\n\r\nPHNhbWw+\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"response\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"metadata\"; filename=\"idp.xml\"\r\n\r\n<md/>\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\nold text\r\n--b--\r\n";
        let req = Request::post("/")
            .header("content-type", "multipart/form-data; boundary=b")
            .body(Body::from(body))
            .unwrap();
        let f = FormData::from_request(req, &()).await.expect("form");
        assert_eq!(f.get("response"), "PHNhbWw+");
        assert_eq!(
            f.get("metadata"),
            "<md/>",
            "a chosen file wins over its text area"
        );
    }
}

#[cfg(test)]
mod big_tests {
    use axum::body::Body;
    use axum::extract::FromRequest;
    use axum::http::Request;

    use super::FormData;

    #[tokio::test]
    async fn a_file_over_a_mebibyte_is_read() {
        let big = "x".repeat(1100 * 1024);
        let body = format!(
            "--b\r\nContent-Disposition: form-data; name=\"metadata\"; filename=\"a.xml\"\r\n\r\n{big}\r\n--b--\r\n"
        );
        let req = Request::post("/")
            .header("content-type", "multipart/form-data; boundary=b")
            .body(Body::from(body))
            .unwrap();
        let f = FormData::from_request(req, &()).await;
        assert!(f.is_ok(), "{:?}", f.err().map(|r| r.status()));
    }
}
