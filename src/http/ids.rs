//! [`PathId`]: an entity id taken from the path and parsed before the handler runs, so a
//! handler receives a typed id or is never called. An id that does not parse names nothing
//! this API issued, and answers 404 `not_found` like one that is well formed but unknown
//! (the error normalizer maps poem-openapi's path errors so). The spec declares each as a
//! UUID string.

use std::{borrow::Cow, str::FromStr};

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromParameter, ParseResult, Type},
};

/// A typed id from the path (`DocumentId`, `VerificationId`, `OutboxId`, `WebhookId`).
#[derive(Debug, Clone, Copy)]
pub struct PathId<T>(pub T);

impl<T: FromStr + Send + Sync> Type for PathId<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string_uuid".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "uuid")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<T: FromStr + Send + Sync> ParseFromParameter for PathId<T> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        value
            .parse()
            .map(Self)
            .map_err(|_| ParseError::custom("not an id this API issued"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kyc::DocumentId;

    #[test]
    fn only_the_canonical_spelling_parses() {
        let id = DocumentId::new();
        let parsed = PathId::<DocumentId>::parse_from_parameter(&id.to_string()).unwrap();
        assert_eq!(parsed.0, id);
        for bad in [
            id.as_uuid().simple().to_string(),
            format!("{{{id}}}"),
            "1".into(),
            String::new(),
        ] {
            assert!(
                PathId::<DocumentId>::parse_from_parameter(&bad).is_err(),
                "{bad}"
            );
        }
    }
}
