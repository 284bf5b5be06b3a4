//! Conformance of [`RoutingStore`](crate::RoutingStore).

#[allow(unused_imports)]
use super::*;

/// The tests of this module, for [`conformance_suite!`](crate::conformance_suite).
#[macro_export]
#[doc(hidden)]
macro_rules! conformance_routing_tests {
    ($open:path) => {
        $crate::conformance_suite!(@tests $open;);
    };
}
