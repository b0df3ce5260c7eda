//! Worker (to come).
