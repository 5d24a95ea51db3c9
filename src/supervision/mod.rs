//! # Supervision
//!
//! The supervision tree: the supervisors and their restart policies. Every supervisor states
//! its policy for a failing child in its module docs; none ignores an event. The handles the
//! rest of the service uses to reach the actors are `crate::actors::handles`; supervision may
//! use `actors`, never the other way round.
//!
//! ```text
//! RootSupervisor
//! ├── KeyedSupervisor<DocumentActor>       one DocumentActor per active document
//! ├── KeyedSupervisor<VerificationActor>   one VerificationActor per active verification
//! ├── WorkflowDriver                       nudges verifications whose documents settled; fires due timers
//! ├── OcrPool                              one OcrWorker per device
//! ├── OutboxActor                          delivers BULI2's decisions (when BULI2 is configured)
//! ├── WebhookLane                          delivers status webhooks, concurrently, apart from decisions
//! └── Reaper                               gives back OCR runs past their deadline or left by dead nodes
//! ```

pub mod keyed;
pub mod reaper;
pub mod root;
