//! Terminal UI shared by the two Airlift binaries: progress, output format, error reports and
//! exit codes. Only the binaries depend on this crate; libraries report through
//! [`airlift_bundle::Progress`].

pub mod docs;
pub mod exit;
pub mod output;
pub mod progress;
pub mod registry_flags;
pub mod table;

pub use exit::{report, report_json, CommandError, ExitKind, ResultExt};
pub use output::{print_as, OutputFormat, Printer};
pub use progress::{progress_for, progress_with_total, BarProgress};
pub use registry_flags::RegistryFlags;
pub use table::Table;
