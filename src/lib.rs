//! offer-cancel-operator: cancels in-flight Cloud Partner Portal offer
//! operations from Kubernetes.
pub mod crd;
pub mod cpp;
pub mod metrics;
pub mod decide;
pub mod controller;
pub mod credentials;
pub mod engine;
pub mod simulator;
