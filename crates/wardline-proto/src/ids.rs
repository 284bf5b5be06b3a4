//! Identifiers. All are random UUIDs (v4) so that an id reveals neither
//! creation order nor tenant.
//!
//! The ids that store and service signatures take side by side are
//! newtypes, so that an organisation, a user, a device and a session cannot
//! be passed in one another's place. On the wire they are plain UUID strings
//! (`#[serde(transparent)]`), and the wire types keep `Uuid` fields, so the
//! API and its OpenAPI document do not change; `From` converts at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new_v4() -> $name {
                $name(Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<$name, uuid::Error> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> $name {
                $name(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl PartialEq<Uuid> for $name {
            fn eq(&self, other: &Uuid) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$name> for Uuid {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

id!(
    /// An organisation (a tenant).
    OrgId
);
id!(
    /// A user of one organisation.
    UserId
);
id!(
    /// A session, bound to one device.
    SessionId
);
id!(
    /// Chosen by the client when it first runs and kept in its profile; sessions are
    /// bound to it so that a lost device's sessions can be revoked on their own.
    DeviceId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_uuid_strings_on_the_wire() {
        let u = Uuid::new_v4();
        let id = UserId(u);
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            serde_json::to_string(&u).unwrap()
        );
        assert_eq!(
            serde_json::from_str::<UserId>(&format!("\"{u}\"")).unwrap(),
            id
        );
        assert_eq!(id.to_string(), u.to_string());
        assert_eq!(format!("{id:?}"), format!("{u:?}"));
        assert_eq!(u.to_string().parse::<UserId>().unwrap(), id);
    }
}
