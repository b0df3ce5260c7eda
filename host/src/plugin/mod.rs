//! Plugin catalog (to come).
