//! The organisation's policy rules as pure functions: each section's
//! validation and the calculations more than one domain applies (a message's
//! lifespan, quiet hours, the escalation ladder). They sit below every domain
//! service so that checking a policy never needs another domain's service
//! (the directory saves the whole policy; messaging plans escalation and
//! lifespans at submission; routing and patients both honour quiet hours).

pub mod lifecycle;
pub mod patients;
pub mod routing;
