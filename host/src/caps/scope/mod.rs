//! Who owns what a plugin creates on the host, and when it goes away.
//!
//! - [`HostEnv`], one per runtime: the work directory, how process trees are killed
//!   (cgroup v2, or process groups plus kill-by-user), the janitor.
//! - [`EngineScope`], one per engine (it outlives instance restarts): the plugin's
//!   policy, its state and sandboxes directories, its cgroup, its live tasks.
//! - [`TaskScope`], one per task: the sandbox directory, the task cgroup, task
//!   users, processes and the host tasks copying their bytes. It closes when the
//!   worker drops the task's last contract object, or when the instance that made it
//!   dies ([`InstanceGuard`]): every process is killed at once (synchronously, in
//!   microseconds), the rest is the janitor's (users, directories, cgroups). A task
//!   whose engine left a recovery record (contract 0.1.4) stays open when its
//!   instance dies, for the next instance to take over ([`TaskScope::adopt`]).
//!
//! Layout under the work dir: `engines/<name>/state/`, `engines/<name>/sandboxes/<key>/`,
//! `journal/<key>.json`; directories a task user must traverse are 0711.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::task::AbortHandle;

pub(crate) mod host_env;
pub(crate) mod janitor;
mod sandbox;

use self::janitor::Cleanup;
use super::os::bounds::TaskBounds;
use super::os::cgroup::Cgroup;
use super::os::netns;
use super::os::users::SystemUser;
use super::{CapError, CapResult, invalid, os_error};
use crate::policy::Policy;

pub(crate) use host_env::make_dir;
pub use host_env::{HostEnv, ProcessBounds, default_work_dir};
pub(crate) use sandbox::SandboxDir;

/// The largest recovery record an engine may leave per task.
pub(crate) const MAX_RECOVERY_RECORD: usize = 64 * 1024;

/// One engine's capabilities; survives instance restarts.
pub struct EngineScope {
    pub(crate) host: Arc<HostEnv>,
    pub(crate) policy: Arc<Policy>,
    task_limits: ProcessBounds,
    /// Whether the operator was told that task bounds cannot be set here.
    unbounded_warned: AtomicBool,
    name: String,
    id: u64,
    cgroup: OnceLock<Option<Cgroup>>,
    tasks: Mutex<Vec<Weak<TaskScope>>>,
    next_task: AtomicU64,
    /// Open unix socket connections (capped by `unix-sockets.max-connections`).
    pub(crate) unix_connections: Connections,
}

impl EngineScope {
    /// The scope of engine `name` under `policy`, its tasks bounded by `task_limits`.
    pub fn new(host: Arc<HostEnv>, policy: Arc<Policy>, task_limits: ProcessBounds) -> Arc<EngineScope> {
        let id = host.engines.fetch_add(1, Ordering::SeqCst);
        Arc::new(EngineScope {
            name: policy.plugin().to_string(),
            host,
            policy,
            task_limits,
            unbounded_warned: AtomicBool::new(false),
            id,
            cgroup: OnceLock::new(),
            tasks: Mutex::default(),
            next_task: AtomicU64::new(0),
            unix_connections: Default::default(),
        })
    }

    fn engine_dir(&self) -> PathBuf {
        self.host.work_dir.join("engines").join(&self.name)
    }

    /// The engine's state directory (created on first use, 0700).
    pub(crate) fn state_dir(&self) -> std::io::Result<PathBuf> {
        make_dir(&self.engine_dir(), 0o711)?;
        let dir = self.engine_dir().join("state");
        make_dir(&dir, 0o700)?;
        Ok(dir)
    }

    /// The directory holding the tasks' sandbox directories (created on first use).
    pub(crate) fn sandboxes_dir(&self) -> std::io::Result<PathBuf> {
        make_dir(&self.engine_dir(), 0o711)?;
        let dir = self.engine_dir().join("sandboxes");
        make_dir(&dir, 0o711)?;
        Ok(dir)
    }

    /// The engine's cgroup, when process trees are killed by cgroup.
    fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup
            .get_or_init(|| {
                let tree = self.host.tree.as_ref()?;
                match Cgroup::create(tree.root(), &format!("{}-{}", self.name, self.id)) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(engine = %self.name, "cannot create the engine's cgroup: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// A new task of instance `generation`.
    pub(crate) fn new_task(self: &Arc<Self>, generation: u64) -> Arc<TaskScope> {
        let n = self.next_task.fetch_add(1, Ordering::SeqCst);
        let task = Arc::new(TaskScope {
            key: format!("{}-{}-{n}", std::process::id(), self.id),
            engine: self.clone(),
            generation: AtomicU64::new(generation),
            record: Mutex::default(),
            recoverable: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            state: Mutex::default(),
        });
        let mut tasks = self.tasks.lock().expect("task registry");
        tasks.retain(|t| t.strong_count() > 0);
        tasks.push(Arc::downgrade(&task));
        task
    }

    /// Keeps the processes of every task of instance `generation` that has a
    /// recovery record (called when the instance died, before its Store and the
    /// process handles in it go): a fresh instance may adopt them.
    pub(crate) fn detain_generation(&self, generation: u64) {
        for task in self.tasks_of(generation) {
            if task.holds_recovery() {
                task.detain_processes();
            }
        }
    }

    /// The live tasks of instance `generation`.
    fn tasks_of(&self, generation: u64) -> Vec<Arc<TaskScope>> {
        self.tasks
            .lock()
            .expect("task registry")
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|t| t.generation.load(Ordering::SeqCst) == generation)
            .collect()
    }

    /// Closes every live task of instance `generation` (it trapped or was dropped).
    fn close_generation(&self, generation: u64) {
        for task in self.tasks_of(generation) {
            if task.holds_recovery() {
                tracing::info!(engine = %self.name, task = %task.key, "the task has a recovery record: it stays for the next instance");
                continue;
            }
            task.close();
        }
    }
}

impl Drop for EngineScope {
    fn drop(&mut self) {
        // Every task holds the scope, so none is alive here; only the cgroup is left.
        if let Some(Some(cgroup)) = self.cgroup.take() {
            self.host.janitor.submit(Cleanup {
                cgroup: Some(cgroup.path().to_path_buf()),
                ..Cleanup::default()
            });
        }
    }
}

/// A process the scope kills when its task ends (`process::ProcEntry`): the
/// scope holds it weakly, the engine's handle strongly.
pub(crate) trait TaskProcess: Send + Sync {
    /// Kills the process and everything it started, now (synchronous, cheap).
    fn kill_now(&self);
    /// Its pid.
    fn pid(&self) -> u32;
    /// Itself, for `process::adopt` to find its type again.
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
}

/// The open unix socket connections of one engine (`unix_socket` takes a slot
/// per connection; capped by `unix-sockets.max-connections`).
#[derive(Default)]
pub(crate) struct Connections(pub(crate) Arc<AtomicU32>);

/// Held in the Store: when the instance is gone, so are its tasks' processes.
pub(crate) struct InstanceGuard {
    engine: Arc<EngineScope>,
    generation: u64,
}

impl InstanceGuard {
    pub(crate) fn new(engine: Arc<EngineScope>, generation: u64) -> Self {
        InstanceGuard { engine, generation }
    }

    /// The instance died: keep the processes of its tasks that have a recovery
    /// record, before the Store (and the process handles in it) goes.
    pub(crate) fn instance_died(&self) {
        self.engine.detain_generation(self.generation);
    }
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        self.engine.close_generation(self.generation);
    }
}

#[derive(Default)]
struct TaskState {
    sandbox: Option<Arc<SandboxDir>>,
    cgroup: Option<Cgroup>,
    /// Process and memory limits, set at the first process.
    bounds: Option<TaskBounds>,
    /// The task's network namespace, made at the first process that needs one.
    netns: Option<OwnedFd>,
    users: Vec<SystemUser>,
    /// Each user's supplementary groups, by uid (for `users::adopt_user`).
    user_groups: Vec<(u32, Vec<u32>)>,
    processes: Vec<Weak<dyn TaskProcess>>,
    /// Processes kept past their instance's death, until adopted or the end.
    detained: Vec<Arc<dyn TaskProcess>>,
    /// The task's endpoints by address (`endpoint::Core`, held by the engine's
    /// handle), and those kept past their instance's death.
    endpoint_list: Vec<(String, Weak<dyn std::any::Any + Send + Sync>)>,
    kept_endpoints: Vec<(String, Arc<dyn std::any::Any + Send + Sync>)>,
    spawned: u32,
    endpoints: u32,
    host_tasks: Vec<AbortHandle>,
    journal: Option<Cleanup>,
}

/// One task's capabilities: everything it made on the host.
pub(crate) struct TaskScope {
    pub(crate) key: String,
    pub(crate) engine: Arc<EngineScope>,
    /// The instance the task belongs to (closed with it unless it has a record).
    generation: AtomicU64,
    /// The engine's recovery record (contract 0.1.4), when it left one.
    record: Mutex<Option<Arc<[u8]>>>,
    /// Whether the task is in the window where it can be taken over: its
    /// sandbox started and its result has not arrived (set by the runtime).
    recoverable: AtomicBool,
    ended: AtomicBool,
    state: Mutex<TaskState>,
}

impl TaskScope {
    fn lock(&self) -> std::sync::MutexGuard<'_, TaskState> {
        self.state.lock().expect("task scope lock")
    }

    /// `task-ended` once the task is over.
    pub(crate) fn live(&self) -> CapResult<()> {
        if self.ended.load(Ordering::SeqCst) {
            return Err(CapError::TaskEnded);
        }
        Ok(())
    }

    /// Sets the task's recovery record (at most [`MAX_RECOVERY_RECORD`] bytes; an
    /// empty one clears it).
    pub(crate) fn set_recovery_record(&self, record: Vec<u8>) -> Result<(), String> {
        if self.has_ended() {
            return Err("the task has ended; nothing is left to take over".into());
        }
        if record.len() > MAX_RECOVERY_RECORD {
            return Err(format!(
                "a recovery record of {} bytes is refused: at most {MAX_RECOVERY_RECORD} bytes; record ids \
                 and paths, not state",
                record.len()
            ));
        }
        *self.record.lock().expect("record lock") = (!record.is_empty()).then(|| record.into());
        Ok(())
    }

    /// The task's recovery record, if its engine left one.
    pub(crate) fn recovery_record(&self) -> Option<Arc<[u8]>> {
        self.record.lock().expect("record lock").clone()
    }

    /// Forgets the recovery record and closes the recovery window: the task
    /// ends with its instance, as before contract 0.1.4.
    pub(crate) fn forget_recovery_record(&self) {
        self.recoverable.store(false, Ordering::SeqCst);
        *self.record.lock().expect("record lock") = None;
    }

    /// Opens the recovery window (the task's sandbox started).
    pub(crate) fn set_recoverable(&self) {
        self.recoverable.store(true, Ordering::SeqCst);
    }

    /// Whether a trap now would leave the task for a fresh instance: it is in
    /// the recovery window and its engine left a record.
    pub(crate) fn holds_recovery(&self) -> bool {
        self.recoverable.load(Ordering::SeqCst) && self.recovery_record().is_some()
    }

    /// Kills the kept processes nobody adopted (after a recovery, whatever its
    /// outcome: the old instance's shells, and anything the record did not name).
    pub(crate) fn release_detained(&self) {
        let (detained, endpoints) = {
            let mut state = self.lock();
            (
                std::mem::take(&mut state.detained),
                std::mem::take(&mut state.kept_endpoints),
            )
        };
        for process in &detained {
            process.kill_now();
        }
        drop(endpoints); // closed, unless adopted
    }

    /// Moves the task to instance `generation` (it took the task over): when that
    /// instance dies, the task is closed with it, unless it still has a record.
    pub(crate) fn adopt(&self, generation: u64) {
        self.generation.store(generation, Ordering::SeqCst);
    }

    /// Whether the task is over.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Records `change` in the task's journal entry before it happens on the host.
    fn journal(&self, state: &mut TaskState, change: impl FnOnce(&mut Cleanup)) -> CapResult<()> {
        let entry = state.journal.get_or_insert_with(|| Cleanup {
            journal: Some(self.engine.host.janitor.entry_path(&self.key)),
            ..Cleanup::default()
        });
        change(entry);
        self.engine
            .host
            .janitor
            .record(entry)
            .map_err(|e| os_error("writing the cleanup journal", e))
    }

    /// The sandbox directory, created (0711, root) on first use.
    pub(crate) fn sandbox(&self) -> CapResult<Arc<SandboxDir>> {
        self.live()?;
        let mut state = self.lock();
        if let Some(s) = &state.sandbox {
            return Ok(s.clone());
        }
        let parent = self
            .engine
            .sandboxes_dir()
            .map_err(|e| os_error("creating the sandboxes directory", e))?;
        let path = parent.join(&self.key);
        self.journal(&mut state, |j| j.sandbox = Some(path.clone()))?;
        make_dir(&path, 0o711).map_err(|e| os_error("creating the sandbox directory", e))?;
        let dir = cap_std::fs::Dir::open_ambient_dir(&path, cap_std::ambient_authority())
            .map_err(|e| os_error("opening the sandbox directory", e))?;
        let sandbox = Arc::new(SandboxDir {
            guest: format!("/sandboxes/{}", self.key),
            path,
            dir,
        });
        state.sandbox = Some(sandbox.clone());
        Ok(sandbox)
    }

    /// The task's cgroup (cgroup mode only), created on first use.
    pub(crate) fn cgroup(&self) -> CapResult<Option<PathBuf>> {
        self.live()?;
        let Some(engine_cgroup) = self.engine.cgroup() else {
            return Ok(None);
        };
        let mut state = self.lock();
        if let Some(c) = &state.cgroup {
            return Ok(Some(c.path().to_path_buf()));
        }
        let path = engine_cgroup.path().join(&self.key);
        self.journal(&mut state, |j| j.cgroup = Some(path.clone()))?;
        let cgroup =
            Cgroup::create(engine_cgroup.path(), &self.key).map_err(|e| os_error("creating the task's cgroup", e))?;
        state.cgroup = Some(cgroup);
        Ok(Some(path))
    }

    /// The `cgroup.procs` of the task's v1 limit directories for a new process to join,
    /// setting the limits at the first call. Where no limit can be set, the task runs
    /// unbounded and the operator's log says why, once per engine.
    pub(crate) fn bounds_to_join(&self) -> CapResult<Vec<OwnedFd>> {
        let v2 = self.cgroup()?;
        let mut state = self.lock();
        if state.bounds.is_none() {
            let limits = self.engine.task_limits;
            let (bounds, unbounded) = TaskBounds::create(v2.as_deref(), &self.key, limits.pids, limits.memory_bytes());
            if !unbounded.is_empty() && !self.engine.unbounded_warned.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    engine = %self.engine.name,
                    "task processes run without these limits here: {}",
                    unbounded.join("; ")
                );
            }
            let dirs = bounds.own_dirs();
            state.bounds = Some(bounds);
            if !dirs.is_empty() {
                self.journal(&mut state, |j| j.bounds = dirs)?;
            }
        }
        state
            .bounds
            .as_ref()
            .map_or(Ok(Vec::new()), TaskBounds::open_procs)
            .map_err(|e| os_error("opening the task's limit cgroups", e))
    }

    /// One sentence per task limit hit since the last call (for the task log).
    pub(crate) fn bound_hits(&self) -> Vec<String> {
        self.lock()
            .bounds
            .as_mut()
            .map(TaskBounds::new_hits)
            .unwrap_or_default()
    }

    /// The task's network namespace (made at the first call), for a process that
    /// does not get the worker's network.
    pub(crate) fn netns(&self) -> CapResult<(OwnedFd, bool)> {
        self.live()?;
        let mut state = self.lock();
        let fresh = state.netns.is_none();
        if fresh {
            let ns = netns::create().map_err(|e| {
                invalid(format!(
                    "task processes get a network namespace of their own (no network; [plugins.{}.process] \
                     network = \"none\", the default), but none can be made here ({e}; it needs root). Grant \
                     network = \"host\" in [plugins.{}.process] to run them with the worker's network",
                    self.engine.name, self.engine.name
                ))
            })?;
            state.netns = Some(ns);
        }
        let ns = state.netns.as_ref().expect("just made");
        let ns = ns
            .try_clone()
            .map_err(|e| os_error("duplicating the network namespace descriptor", e))?;
        Ok((ns, fresh))
    }

    /// Journals a user about to be created; call [`TaskScope::add_user`] once it is.
    pub(crate) fn journal_user(&self, name: &str, uid: u32) -> CapResult<()> {
        self.live()?;
        let mut state = self.lock();
        self.journal(&mut state, |j| j.users.push((name.to_string(), uid)))
    }

    /// Takes back [`TaskScope::journal_user`] for a user that was never created
    /// (its name turned out to be taken): the janitor must not remove someone else's.
    pub(crate) fn unjournal_user(&self, name: &str) -> CapResult<()> {
        let mut state = self.lock();
        self.journal(&mut state, |j| j.users.retain(|(n, _)| n != name))
    }

    /// Takes ownership of a created user (removed when the task ends). When the task
    /// ended meanwhile, the user is removed at once and this fails.
    pub(crate) fn add_user(&self, user: SystemUser, groups: Vec<u32>) -> CapResult<()> {
        let mut state = self.lock();
        if self.has_ended() {
            drop(state);
            self.engine.host.janitor.submit(Cleanup {
                users: vec![(user.name, user.uid)],
                ..Cleanup::default()
            });
            return Err(CapError::TaskEnded);
        }
        state.user_groups.push((user.uid, groups));
        state.users.push(user);
        Ok(())
    }

    /// The task's user with `uid` and its supplementary groups, if it has one.
    pub(crate) fn user(&self, uid: u32) -> Option<(SystemUser, Vec<u32>)> {
        let state = self.lock();
        let user = state.users.iter().find(|u| u.uid == uid)?.clone();
        let groups = state
            .user_groups
            .iter()
            .find(|(u, _)| *u == uid)
            .map(|(_, g)| g.clone())
            .unwrap_or_default();
        Some((user, groups))
    }

    /// Keeps every live process and endpoint of the task past its instance
    /// (see [`EngineScope::detain_generation`]).
    fn detain_processes(&self) {
        let mut state = self.lock();
        if self.has_ended() {
            return; // closed: everything was killed or closed already
        }
        let live: Vec<Arc<dyn TaskProcess>> = state.processes.iter().filter_map(Weak::upgrade).collect();
        for process in live {
            if !state.detained.iter().any(|d| Arc::ptr_eq(d, &process)) {
                state.detained.push(process);
            }
        }
        let endpoints: Vec<_> = state
            .endpoint_list
            .iter()
            .filter_map(|(address, e)| Some((address.clone(), e.upgrade()?)))
            .collect();
        for (address, endpoint) in endpoints {
            if !state.kept_endpoints.iter().any(|(_, k)| Arc::ptr_eq(k, &endpoint)) {
                state.kept_endpoints.push((address, endpoint));
            }
        }
    }

    /// Registers an endpoint of the task at `address`, held weakly (the
    /// engine's handle holds it): kept past its instance like the processes.
    pub(crate) fn add_endpoint(&self, address: &str, endpoint: Weak<dyn std::any::Any + Send + Sync>) -> CapResult<()> {
        let mut state = self.lock();
        if self.has_ended() {
            return Err(CapError::TaskEnded);
        }
        state.endpoint_list.retain(|(_, e)| e.strong_count() > 0);
        state.endpoint_list.push((address.to_string(), endpoint));
        Ok(())
    }

    /// Takes the kept endpoint at `address` (a fresh instance adopts it).
    pub(crate) fn adopt_endpoint(&self, address: &str) -> CapResult<Arc<dyn std::any::Any + Send + Sync>> {
        self.live()?;
        let mut state = self.lock();
        let at = state
            .kept_endpoints
            .iter()
            .position(|(a, _)| a == address)
            .ok_or_else(|| {
                CapError::NotFound(format!(
                    "no endpoint of the task at '{address}' outlived its instance (only endpoints of a task with a \
                 recovery record are kept, until adopted once)"
                ))
            })?;
        Ok(state.kept_endpoints.swap_remove(at).1)
    }

    /// Takes the kept process with `pid` (a fresh instance adopts it).
    pub(crate) fn adopt_process(&self, pid: u32) -> CapResult<Arc<dyn TaskProcess>> {
        self.live()?;
        let mut state = self.lock();
        let at = state.detained.iter().position(|p| p.pid() == pid).ok_or_else(|| {
            CapError::NotFound(format!(
                "no process of the task with pid {pid} outlived its instance (only processes of a task with a \
                 recovery record are kept, until adopted once)"
            ))
        })?;
        Ok(state.detained.swap_remove(at))
    }

    /// The task's users (for `run-as`).
    pub(crate) fn has_user(&self, uid: u32) -> bool {
        self.lock().users.iter().any(|u| u.uid == uid)
    }

    /// Counts a spawn against `max`; fails beyond it.
    pub(crate) fn count_spawn(&self, max: Option<u32>) -> CapResult<()> {
        self.live()?;
        let mut state = self.lock();
        if let Some(max) = max
            && state.spawned >= max
        {
            return Err(invalid(format!(
                "the task already started {max} processes, the operator's limit (process.max-per-task)"
            )));
        }
        state.spawned += 1;
        Ok(())
    }

    /// Counts an endpoint against `max` per task; fails beyond it.
    pub(crate) fn count_endpoint(&self, max: u32) -> CapResult<()> {
        self.live()?;
        let mut state = self.lock();
        if state.endpoints >= max {
            return Err(invalid(format!(
                "the task already opened {max} endpoints, the most one task may"
            )));
        }
        state.endpoints += 1;
        Ok(())
    }

    /// How many processes the task started.
    pub(crate) fn spawned(&self) -> u32 {
        self.lock().spawned
    }

    /// Registers a started process (killed when the task ends). When the task ended
    /// meanwhile, the process is killed at once and this fails.
    pub(crate) fn add_process(&self, process: Weak<dyn TaskProcess>) -> CapResult<()> {
        let mut state = self.lock();
        if self.has_ended() {
            drop(state);
            if let Some(process) = process.upgrade() {
                process.kill_now();
            }
            return Err(CapError::TaskEnded);
        }
        state.processes.retain(|p| p.strong_count() > 0);
        state.processes.push(process);
        Ok(())
    }

    /// Registers a host task (a copier, a socket relay) aborted when the task ends.
    pub(crate) fn add_host_task(&self, task: AbortHandle) {
        let mut state = self.lock();
        if self.has_ended() {
            task.abort();
            return;
        }
        state.host_tasks.retain(|t| !t.is_finished());
        state.host_tasks.push(task);
    }

    /// Kills every process of the task now (its cgroup, each process it started,
    /// and whatever its users still run, `setsid` daemons included) without ending
    /// it: before the host moves something its processes could still reach.
    /// Blocking (the kill by uid waits for the processes to go).
    pub(crate) fn kill_processes(&self) {
        let (uids, processes) = {
            let state = self.lock();
            if let Some(cgroup) = &state.cgroup {
                cgroup.kill();
            }
            let processes: Vec<_> = state.processes.iter().filter_map(|p| p.upgrade()).collect();
            (state.users.iter().map(|u| u.uid).collect::<Vec<_>>(), processes)
        };
        for p in processes {
            p.kill_now();
        }
        for uid in uids {
            let left = crate::caps::os::uidkill::kill_by_uid(uid);
            if left > 0 {
                tracing::warn!(uid, left, "processes of a task user outlived the kill");
            }
        }
    }

    /// Ends the task: kills every process now, stops the host tasks, and leaves the
    /// users, the cgroup and the sandbox directory to the janitor. Idempotent.
    pub(crate) fn close(&self) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut state = self.lock();
        if let Some(cgroup) = &state.cgroup {
            cgroup.kill();
        }
        for p in state.processes.drain(..).filter_map(|p| p.upgrade()) {
            p.kill_now();
        }
        let detained = std::mem::take(&mut state.detained);
        let kept_endpoints = std::mem::take(&mut state.kept_endpoints);
        state.endpoint_list.clear();
        for task in state.host_tasks.drain(..) {
            task.abort();
        }
        state.netns = None;
        let cleanup = Cleanup {
            journal: state.journal.as_ref().and_then(|j| j.journal.clone()),
            cgroup: state.cgroup.take().map(|c| c.path().to_path_buf()),
            bounds: state.bounds.take().map(|b| b.own_dirs()).unwrap_or_default(),
            users: state.users.drain(..).map(|u| (u.name, u.uid)).collect(),
            sandbox: state.sandbox.take().map(|s| s.path.clone()),
        };
        drop(state);
        drop(detained); // killed above; dropping removes their cgroups
        drop(kept_endpoints); // their servers were aborted above
        if cleanup != Cleanup::default() {
            self.engine.host.janitor.submit(cleanup);
        }
    }

    /// A path inside the sandbox, checked lexically (no `..`, not absolute); the
    /// open itself is done beneath the sandbox directory.
    pub(crate) fn check_relative(path: &str) -> CapResult<()> {
        let p = Path::new(path);
        if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(invalid(format!(
                "'{path}' must be a path relative to the task's sandbox directory, without '..'"
            )));
        }
        Ok(())
    }
}
