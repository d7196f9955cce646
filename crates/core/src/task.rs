//! Tasks: the named handlers jobs run.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::id::{JobId, RunId};

/// The error a task returns: anything that converts into a boxed error
/// (`anyhow::Error`, `std::io::Error`, a `String`...).
pub type TaskError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a task returns.
pub type TaskResult = Result<(), TaskError>;

type BoxedTask = Pin<Box<dyn Future<Output = TaskResult> + Send + 'static>>;

/// What a task is told about the run it is doing.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The job.
    pub job_id: JobId,
    /// The run: the same for every retry of one scheduled time, so it can
    /// serve as an idempotency key.
    pub run_id: RunId,
    /// The time the run was scheduled for.
    pub scheduled_for: Timestamp,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The job's arguments.
    pub args: Arc<serde_json::Value>,
    /// Cancelled when the run times out, its job is removed with
    /// cancellation, or the scheduler shuts down cancelling runs. A task that
    /// ignores it is aborted at its next `.await` after a grace period.
    pub cancel: CancellationToken,
    /// For a run an alert asked for (this job is another's `on_alert`
    /// hook): which job is in alert, why, since when.
    pub alert: Option<Arc<crate::reason::AlertNotice>>,
    /// Where `set_output` leaves its text for the run record.
    pub(crate) output: Arc<std::sync::Mutex<Option<String>>>,
}

impl JobContext {
    /// A context for calling a task directly, as a unit test of the task
    /// would: a new run id, scheduled now, attempt 1, a fresh token.
    ///
    /// ```
    /// use chime_core::{JobContext, JobId};
    ///
    /// let ctx = JobContext::new(JobId::new("report")?, serde_json::json!({"to": "ops"}));
    /// ctx.set_output("sent");
    /// assert_eq!(ctx.output().as_deref(), Some("sent"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(job_id: JobId, args: serde_json::Value) -> JobContext {
        JobContext {
            job_id,
            run_id: RunId::new(),
            scheduled_for: Timestamp::now(),
            attempt: 1,
            args: Arc::new(args),
            cancel: CancellationToken::new(),
            alert: None,
            output: Arc::default(),
        }
    }

    /// The same context, as a run asked for by an alert would have it: for
    /// testing an `on_alert` hook's task.
    pub fn with_alert(mut self, notice: crate::reason::AlertNotice) -> JobContext {
        self.alert = Some(Arc::new(notice));
        self
    }

    /// What [`set_output`](JobContext::set_output) last recorded.
    pub fn output(&self) -> Option<String> {
        self.output.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The arguments as a typed value.
    ///
    /// ```
    /// # use chime_core::JobContext;
    /// #[derive(serde::Deserialize)]
    /// struct Report { to: String }
    ///
    /// async fn send_report(ctx: JobContext) -> Result<(), chime_core::TaskError> {
    ///     let report: Report = ctx.args()?;
    ///     println!("mailing {}", report.to);
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// A message naming the job when the arguments do not have that shape.
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        T::deserialize(&*self.args)
            .map_err(|e| format!("job {}: arguments do not fit the task: {e}", self.job_id).into())
    }

    /// Records a short text with the run (kept in history, capped at 4 KiB),
    /// such as the tail of a command's output. The last call wins.
    pub fn set_output(&self, text: impl Into<String>) {
        *self.output.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.into());
    }

    /// Whether the run has been asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// A registered handler.
#[derive(Clone)]
pub(crate) enum Handler {
    Async(Arc<dyn Fn(JobContext) -> BoxedTask + Send + Sync>),
    Blocking(Arc<dyn Fn(JobContext) -> TaskResult + Send + Sync>),
}

/// The named tasks jobs can run.
///
/// ```
/// use chime_core::{JobContext, TaskRegistry};
///
/// let mut tasks = TaskRegistry::new();
/// tasks.register("send_report", |ctx: JobContext| async move {
///     println!("report for run {}", ctx.run_id);
///     Ok::<_, std::io::Error>(())
/// });
/// tasks.register_blocking("cleanup_tmp", |_ctx| {
///     // Runs on tokio's blocking pool: file system work is fine here.
///     Ok::<_, std::io::Error>(())
/// });
/// assert!(tasks.contains("send_report"));
/// ```
#[derive(Clone, Default)]
pub struct TaskRegistry {
    /// Looked up on every run: foldhash, not SipHash.
    tasks: HashMap<Arc<str>, Handler, foldhash::fast::RandomState>,
}

impl TaskRegistry {
    /// An empty registry.
    pub fn new() -> TaskRegistry {
        TaskRegistry::default()
    }

    /// Registers an async handler under `name`, replacing any previous one.
    pub fn register<F, Fut, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<TaskError> + 'static,
    {
        let handler = Arc::new(move |ctx: JobContext| -> BoxedTask {
            let fut = handler(ctx);
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        self.tasks.insert(Arc::from(name), Handler::Async(handler));
        self
    }

    /// Registers a blocking handler, run on tokio's blocking pool. A blocking
    /// handler cannot be aborted: on timeout its run is recorded as
    /// `timed_out` and its cancellation token fires, but the thread runs on
    /// until the handler returns.
    pub fn register_blocking<F, E>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(JobContext) -> Result<(), E> + Send + Sync + 'static,
        E: Into<TaskError> + 'static,
    {
        let handler = Arc::new(move |ctx: JobContext| handler(ctx).map_err(Into::into));
        self.tasks.insert(Arc::from(name), Handler::Blocking(handler));
        self
    }

    /// Whether a task is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tasks.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tasks.keys().map(|k| &**k).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Option<Handler> {
        self.tasks.get(name).cloned()
    }

    /// The registry's own copy of a task name, so jobs can share it.
    pub(crate) fn interned(&self, name: &str) -> Option<Arc<str>> {
        self.tasks.get_key_value(name).map(|(k, _)| Arc::clone(k))
    }
}

impl fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRegistry").field("tasks", &self.names()).finish()
    }
}

impl Handler {
    /// Starts the handler. An async handler runs inside the caller's task
    /// (one task per run, not two): dropping the returned future aborts it,
    /// and a panic in it is caught. A blocking handler runs on tokio's
    /// blocking pool.
    pub(crate) fn start(&self, ctx: JobContext) -> Started {
        match self {
            // The handler's own code before its future (parsing its
            // arguments, say) may panic too: the run fails with the message.
            Handler::Async(f) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(ctx))) {
                Ok(fut) => Started::Inline(fut),
                Err(payload) => Started::Panicked(Some(panic_message(payload))),
            },
            Handler::Blocking(f) => {
                let f = Arc::clone(f);
                Started::Blocking(tokio::task::spawn_blocking(move || f(ctx)))
            }
        }
    }
}

/// A started handler; resolves to its result, or to the message of its panic.
pub(crate) enum Started {
    Inline(BoxedTask),
    Blocking(tokio::task::JoinHandle<TaskResult>),
    /// The handler panicked before returning its future: the message, until read.
    Panicked(Option<String>),
}

impl Future for Started {
    type Output = Result<TaskResult, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        match self.get_mut() {
            Started::Inline(fut) => {
                // The future is never polled again after a panic: it is dropped.
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                    Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
                    Ok(Poll::Pending) => Poll::Pending,
                    Err(payload) => Poll::Ready(Err(panic_message(payload))),
                }
            }
            Started::Blocking(handle) => match Pin::new(handle).poll(cx) {
                Poll::Ready(Ok(result)) => Poll::Ready(Ok(result)),
                Poll::Ready(Err(e)) if e.is_panic() => Poll::Ready(Err(panic_message(e.into_panic()))),
                Poll::Ready(Err(_)) => Poll::Ready(Err("the blocking task was aborted".to_owned())),
                Poll::Pending => Poll::Pending,
            },
            Started::Panicked(message) => {
                Poll::Ready(Err(message.take().unwrap_or_else(|| "the task panicked".to_owned())))
            }
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_owned())
}
