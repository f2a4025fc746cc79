//! Shared helpers of the end-to-end tests: all from homestick-testkit (running the binary and
//! the tools, fixtures, image bytes, table tests), re-exported under the names the tests use.

pub use homestick_testkit::bytes::*;
pub use homestick_testkit::cases::*;
pub use homestick_testkit::fixture::*;
pub use homestick_testkit::run::*;
pub use homestick_testkit::test_key;
pub use homestick_testkit::EPOCH_TEXT as EPOCH;
