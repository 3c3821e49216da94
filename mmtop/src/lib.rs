//! mmtop: host side of the telemetry link.
