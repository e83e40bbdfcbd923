//! JSON in which no object has the same key twice.
//!
//! serde_json keeps the last of two equal keys; Go's `encoding/json` merges two objects under
//! one key into one struct (and keeps the last scalar), CUE unifies both values. A document
//! that readers read differently is refused where `cip` reads signer or registry data a policy
//! decides on: in-toto statements (`verify::attestations`, and `verify::bundle` for signature
//! bundles) and image configs (`registry`).

use std::collections::BTreeSet;

/// A JSON value in which no object has the same key twice (its deserialization fails naming
/// the key otherwise); nothing is kept: `serde_json::from_slice::<UniqueKeys>(text)` checks.
pub struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<UniqueKeys, A::Error> {
        while items.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<UniqueKeys, A::Error> {
        let mut keys = BTreeSet::new();
        while let Some(key) = members.next_key::<String>()? {
            members.next_value::<UniqueKeys>()?;
            if !keys.insert(key.clone()) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key {key:?} appears twice in one object"
                )));
            }
        }
        Ok(UniqueKeys)
    }
}
