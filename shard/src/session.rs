//! Sans-IO session protocol (see issue 4).
#![forbid(unsafe_code)]
