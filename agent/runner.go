package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/certsync/certsync/ldapsrc"
	"github.com/certsync/certsync/mapping"
	"github.com/certsync/certsync/state"
)

// SourceOpener is one directory of the configuration: its name, how to
// connect to it, and how to listen for its changes.
type SourceOpener struct {
	Name string
	Open func(ctx context.Context) (Source, error)
	// Watch listens for the directory's change notifications (see
	// ldapsrc.Watch): ready when registered, changed per notification,
	// until ctx ends or the connection fails. nil, or ErrNoWatch: the
	// directory is polled only.
	Watch func(ctx context.Context, ready, changed func()) error
}

// RunnerConfig is everything passes need, built once from the
// configuration.
type RunnerConfig struct {
	Sources   []SourceOpener
	StatePath string
	Targets   []Target
	Policy    mapping.Policy
	Safety    Safety
	// FullInterval: see Tracking.FullInterval.
	FullInterval time.Duration
	Log          *zap.Logger
	// Observe, when set, is told the outcome of each of Run's passes
	// (metrics, health, the service manager's watchdog).
	Observe func(PassOutcome)
	// PassTimeout bounds one pass (schedule.passTimeout); 0: no bound. A
	// pass that runs out of time fails: its reads and cloud calls end,
	// what the cloud confirmed is committed as usual, and writes not
	// confirmed stay pending for the next pass.
	PassTimeout time.Duration
}

// Runner runs passes of one configuration. It opens the state file and
// the directories anew for each pass, so that `certsync status` can read
// the file between passes and a directory that cannot be reached is a
// failed pass rather than a failed start; it keeps what lives between
// passes (the CRLs).
type Runner struct {
	cfg         RunnerConfig
	log         *zap.Logger // non-nil
	fingerprint string
	crls        CRLCache
}

// NewRunner checks the configuration and builds a Runner.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if len(cfg.Sources) == 0 {
		return nil, errors.New("agent: no directory source is configured")
	}
	if len(cfg.Targets) == 0 {
		return nil, errors.New("agent: no target is enabled")
	}
	if cfg.StatePath == "" {
		return nil, errors.New("agent: no state file path")
	}
	r := &Runner{cfg: cfg, log: cfg.Log, fingerprint: Fingerprint(cfg.Policy, cfg.Targets)}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	if cfg.Policy.Identity == mapping.IdentityOff {
		r.log.Warn("policy.identity is off: a certificate is published for whichever user it sits on, even when it names someone else; a user who can write their own certificate attribute can take a colleague's certificate sign-in")
	}
	if cfg.Safety.MaxDeletes == 0 && cfg.Safety.MaxDeletePercent == 0 {
		r.log.Warn("no deletion limit: safety.maxDeletes and safety.maxDeletePercent are both unlimited; a pass may withdraw every user's certificates")
	}
	return r, nil
}

// PassOptions say what one pass does.
type PassOptions struct {
	PlanOptions
	// DryRun computes the plan and writes nothing: not to the cloud, not
	// to the state file (which is opened read-only, or not at all when it
	// does not exist yet).
	DryRun bool
	// AllowDeletes lets this pass exceed the deletion limit by stripping
	// values from up to this many users (0: not at all).
	AllowDeletes int
}

// Pass opens the state file and the directories, plans and, unless a dry
// run, applies. The plan comes back whenever one was made, even when
// applying failed or a directory could not be read, so the caller can
// show what happened; the error is the pass's.
func (r *Runner) Pass(ctx context.Context, o PassOptions) (*Plan, error) {
	if o.AllowDeletes < 0 {
		// A bare --allow-deletes: a bound the admin has not read is none.
		return nil, errors.New("--allow-deletes needs the number of users you accept losing certificates: run with --dry-run and pass the number it shows, as --allow-deletes=N")
	}
	if r.cfg.PassTimeout > 0 {
		timedOut := fmt.Errorf("agent: the pass took longer than schedule.passTimeout (%s) and was stopped", r.cfg.PassTimeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.cfg.PassTimeout, timedOut)
		defer cancel()
		plan, err := r.pass(ctx, o)
		if context.Cause(ctx) == timedOut {
			if err == nil {
				err = timedOut
			} else {
				err = fmt.Errorf("%w: %w", timedOut, err)
			}
		}
		return plan, err
	}
	return r.pass(ctx, o)
}

func (r *Runner) pass(ctx context.Context, o PassOptions) (*Plan, error) {
	store, closeStore, err := openStore(r.cfg.StatePath, o.DryRun)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	var sources []NamedSource
	for _, s := range r.cfg.Sources {
		// Opened by the first read, so that a directory that cannot be
		// reached is recorded as that directory's failure.
		l := &lazySource{open: s.Open}
		defer l.Close()
		sources = append(sources, NamedSource{Name: s.Name, Source: l})
	}
	a, err := New(Options{
		Sources: sources, Store: store, Targets: r.cfg.Targets, Policy: r.cfg.Policy, Safety: r.cfg.Safety, Log: r.log,
		Tracking: Tracking{Fingerprint: r.fingerprint, FullInterval: r.cfg.FullInterval},
		CRLs:     &r.crls,
		SpillDir: filepath.Dir(r.cfg.StatePath),
	})
	if err != nil {
		return nil, err
	}
	plan, err := a.Plan(ctx, o.PlanOptions)
	if err != nil {
		if !o.DryRun {
			a.RecordFailure(o.PlanOptions, err)
		}
		return nil, err
	}
	if o.DryRun {
		return plan, plan.Err()
	}
	if err := a.Apply(ctx, plan, o.AllowDeletes); err != nil {
		return plan, err
	}
	return plan, plan.Err()
}

// reconcileEvery is how often Run checks every user's values in the cloud
// rather than only those that changed on-prem.
const reconcileEvery = 24 * time.Hour

// Run is the agent: a pass every interval until ctx ends (see Loop). The
// first pass and then one a day reconcile: they check every user's values
// in the cloud, so hand edits there do not last; the others read only
// what changed, with a full read when FullInterval says.
func (r *Runner) Run(ctx context.Context, interval time.Duration) error {
	trigger := make(chan struct{}, 1)
	changed := func() {
		select {
		case trigger <- struct{}{}:
		default: // a pass is due already
		}
	}
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	for _, s := range r.cfg.Sources {
		if s.Watch != nil {
			go r.watch(watchCtx, s, changed)
		}
	}
	var lastReconcile time.Time
	return Loop(ctx, interval, time.Hour, trigger, func(ctx context.Context) error {
		reconcile := time.Since(lastReconcile) >= reconcileEvery
		started := time.Now()
		plan, err := r.Pass(ctx, PassOptions{PlanOptions: PlanOptions{Reconcile: reconcile, Incremental: !reconcile}})
		r.observe(plan, err, reconcile, started)
		if err == nil && reconcile {
			lastReconcile = time.Now()
		}
		if plan != nil {
			r.logPlan(plan)
			_ = plan.Close()
		}
		return err
	}, r.log)
}

// watch keeps one directory's change notifications registered while ctx
// lives: a registration lost with its connection is made again, with a
// backoff, and each (re)registration triggers a pass, because changes made
// while nobody listened were not notified (the watermark finds them).
func (r *Runner) watch(ctx context.Context, s SourceOpener, changed func()) {
	log := r.log.With(zap.String("source", s.Name))
	wait := time.Second
	for {
		registered := false
		err := s.Watch(ctx, func() { registered = true; changed() }, changed)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ldapsrc.ErrNoWatch):
			log.Info("the directory offers no change notification: passes come every schedule.interval")
			return
		}
		if registered {
			wait = time.Second
		}
		log.Warn("change notification lost; registering again", zap.Error(err), zap.Duration("in", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, time.Minute)
	}
}

func (r *Runner) logPlan(plan *Plan) {
	s := plan.Stats
	r.log.Info("pass summary", zap.String("mode", plan.Mode), zap.String("fullReason", plan.FullReason),
		zap.Int("ldapOperations", s.LDAPOperations), zap.Int("usersRead", s.UsersRead), zap.Int("usersChanged", s.UsersChanged),
		zap.Int("valuesAdded", s.ValuesAdded), zap.Int("valuesRemoved", s.ValuesRemoved),
		zap.Int("usersUnmatched", s.UsersUnmatched), zap.Int("usersSkipped", s.UsersSkipped), zap.Int("usersFailed", s.UsersFailed),
		zap.Int("certificatesRejected", s.CertificatesRejected))
	for u := range plan.Users() {
		if u.Failed() {
			r.log.Warn("user not published", zap.String("user", u.Name), zap.String("source", u.Source), zap.String("dn", u.DN), zap.String("problem", u.ProblemText()))
		}
	}
}

// lazySource connects to a directory on first use.
type lazySource struct {
	open func(context.Context) (Source, error)
	src  Source
}

func (l *lazySource) get(ctx context.Context) (Source, error) {
	if l.src == nil {
		s, err := l.open(ctx)
		if err != nil {
			return nil, err
		}
		l.src = s
	}
	return l.src, nil
}

func (l *lazySource) Read(ctx context.Context, req ldapsrc.ReadRequest, fn func(mapping.SourceUser) error) (ldapsrc.ReadResult, error) {
	s, err := l.get(ctx)
	if err != nil {
		return ldapsrc.ReadResult{}, err
	}
	return s.Read(ctx, req, fn)
}

func (l *lazySource) FindUser(ctx context.Context, id string) (ldapsrc.FoundUser, error) {
	s, err := l.get(ctx)
	if err != nil {
		return ldapsrc.FoundUser{}, err
	}
	return s.FindUser(ctx, id)
}

// CRLs reads the directory's CRLs when it can hold them.
func (l *lazySource) CRLs(ctx context.Context, opts ldapsrc.CRLOptions) ([]ldapsrc.CRLEntry, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	c, ok := s.(CRLSource)
	if !ok {
		return nil, fmt.Errorf("agent: this directory source cannot read CRLs")
	}
	return c.CRLs(ctx, opts)
}

// CertificatesVisible asks the directory whether its account sees
// certificate attributes; a source that cannot tell says yes.
func (l *lazySource) CertificatesVisible(ctx context.Context) (bool, error) {
	s, err := l.get(ctx)
	if err != nil {
		return false, err
	}
	if p, ok := s.(CertificateProbe); ok {
		return p.CertificatesVisible(ctx)
	}
	return true, nil
}

func (l *lazySource) Close() {
	if c, ok := l.src.(interface{ Close() error }); ok {
		_ = c.Close()
	}
}

// openStore opens the state file; a dry run reads a snapshot of it (so it
// never holds the file's lock while it waits on the directory and the
// cloud, which would fail the agent's passes), and with no file yet it
// plans against an empty state rather than create one.
func openStore(path string, dryRun bool) (Store, func(), error) {
	open := state.Open
	if dryRun {
		open = state.OpenSnapshot
	}
	st, err := open(path, state.Options{ReadOnly: dryRun})
	switch {
	case dryRun && errors.Is(err, fs.ErrNotExist):
		return emptyStore{}, func() {}, nil
	case err != nil:
		return nil, nil, err
	}
	return st, func() { _ = st.Close() }, nil
}

// emptyStore is the state of a dry run before the first real pass.
type emptyStore struct{}

func (emptyStore) Get(string) (state.Record, bool, error) { return state.Record{}, false, nil }
func (emptyStore) ForEach(func(state.Record) error) error { return nil }
func (emptyStore) Records(anchors []string, fn func(int, state.Record, bool, error)) {
	for i := range anchors {
		fn(i, state.Record{}, false, nil)
	}
}
func (emptyStore) Briefs(anchors []string, fn func(int, state.Brief, bool, error)) {
	for i := range anchors {
		fn(i, state.Brief{}, false, nil)
	}
}
func (emptyStore) ForEachBrief(func(state.Brief) error) error { return nil }
func (emptyStore) Count() (int, error)                        { return 0, nil }
func (emptyStore) Update([]state.Record, []string) error      { return errDryRunWrite }
func (emptyStore) Commit(state.Commit) error                  { return errDryRunWrite }
func (emptyStore) Meta(string, any) (bool, error)             { return false, nil }
func (emptyStore) SetLastPass(state.PassSummary) error        { return errDryRunWrite }

var errDryRunWrite = errors.New("state: a dry run writes nothing")
