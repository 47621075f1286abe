package diffstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Store. Zero values are the documented defaults.
type Config struct {
	// Driver is "sqlite" (default) or "postgres".
	Driver string
	// SQLitePath is the database file (required for sqlite; created).
	SQLitePath string
	// SQLiteMaxPages, when > 0, hard-caps the SQLite file at that many
	// pages (4 KiB each): writes past it fail like a full disk and are
	// dropped. MaxBytes retention normally keeps the file below it.
	SQLiteMaxPages int
	// PostgresDSN is the connection string (required for postgres).
	PostgresDSN string

	// AgreementSample is the fraction of agreeing pairs stored, in (0, 1];
	// every other outcome is always stored. 0 means 0.1; a negative value
	// stores no agreements (the report then cannot estimate agreement).
	AgreementSample float64
	// MaxInstances caps the instances kept per record (0: 64), and
	// MaxOutputValues the numbers kept per output (0: 64).
	MaxInstances    int
	MaxOutputValues int
	// Redaction says what of the request may be stored.
	Redaction Redaction
	// OutputFor names the output compared for a model (the pipeline's
	// compare option); nil: the protocol default.
	OutputFor func(model string) string

	// QueueSize bounds the records waiting to be written (0: 4096);
	// BatchSize is the most written per transaction (0: 256);
	// FlushInterval the longest a record waits for a batch (0: 1s);
	// WriteTimeout bounds one batch write or migration attempt (0: 5s).
	QueueSize     int
	BatchSize     int
	FlushInterval time.Duration
	WriteTimeout  time.Duration

	// MaxAge deletes records older than this (0: kept by age forever);
	// MaxBytes deletes the oldest while the store is larger (0: no
	// limit); RetentionInterval is how often both run (0: 1m).
	MaxAge            time.Duration
	MaxBytes          int64
	RetentionInterval time.Duration

	// Now is the clock for retention (nil: time.Now); Logger receives
	// write failures, rate-limited (nil: discarded).
	Now    func() time.Time
	Logger *slog.Logger
}

// Store is the diff store: a bounded queue, one writer goroutine and a
// Backend. Safe for concurrent use. OnResult and SetRollout never block;
// Scan and Flush do I/O and take a context.
type Store struct {
	cfg Config
	b   Backend
	red *redactor
	log *slog.Logger

	q        chan Record
	flushReq chan chan error
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	rollout    rolloutPtr
	agreements atomic.Uint64
	migrated   atomic.Bool
	lastWarn   time.Time // writer goroutine only

	m metrics
}

type metrics struct {
	written, sampledOut        prometheus.Counter
	queueFull, diskFull, dbErr prometheus.Counter
	prunedAge, prunedSize      prometheus.Counter
	collectors                 []prometheus.Collector
}

// Drop reasons, the values of the dropped metric's reason label.
const (
	DropQueueFull = "queue_full"
	DropDiskFull  = "disk_full"
	DropDBError   = "db_error"
)

// Open validates cfg, opens the backend, registers metrics on reg (nil:
// not registered) and starts the writer. It tries the schema migration
// once; if the database is unreachable it logs, returns the Store anyway
// and keeps retrying before each batch, so the router starts and serves
// while records are dropped and counted.
func Open(ctx context.Context, cfg Config, reg prometheus.Registerer) (*Store, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	var b Backend
	var err error
	switch cfg.Driver {
	case "sqlite":
		b, err = openSQLite(cfg.SQLitePath, cfg.SQLiteMaxPages)
	case "postgres":
		b, err = openPostgres(cfg.PostgresDSN)
	}
	if err != nil {
		return nil, err
	}
	s := newStore(cfg, b)
	if err := s.register(reg); err != nil {
		b.Close()
		return nil, err
	}
	mctx, cancel := context.WithTimeout(ctx, cfg.WriteTimeout)
	if err := b.Migrate(mctx); err != nil {
		s.log.Warn("diff store: schema migration failed; retrying before each batch (records are dropped meanwhile)", "driver", cfg.Driver, "err", err)
	} else {
		s.migrated.Store(true)
	}
	cancel()
	go s.run()
	return s, nil
}

func (cfg *Config) defaults() error {
	switch cfg.Driver {
	case "", "sqlite":
		cfg.Driver = "sqlite"
		if cfg.SQLitePath == "" {
			return errors.New("diffstore: sqlitePath: required with the sqlite driver")
		}
	case "postgres":
		if cfg.PostgresDSN == "" {
			return errors.New("diffstore: postgresDSN: required with the postgres driver")
		}
	default:
		return fmt.Errorf("diffstore: driver %q: must be sqlite or postgres", cfg.Driver)
	}
	if cfg.AgreementSample > 1 {
		return fmt.Errorf("diffstore: agreementSample %v: must be at most 1", cfg.AgreementSample)
	}
	if cfg.AgreementSample == 0 {
		cfg.AgreementSample = 0.1
	}
	if err := cfg.Redaction.Validate(); err != nil {
		return fmt.Errorf("diffstore: %w", err)
	}
	for _, d := range []*int{&cfg.MaxInstances, &cfg.MaxOutputValues} {
		if *d <= 0 {
			*d = 64
		}
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.RetentionInterval <= 0 {
		cfg.RetentionInterval = time.Minute
	}
	if cfg.MaxAge < 0 || cfg.MaxBytes < 0 {
		return errors.New("diffstore: maxAge and maxBytes must not be negative")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func newStore(cfg Config, b Backend) *Store {
	return &Store{cfg: cfg, b: b, red: newRedactor(cfg.Redaction, cfg.MaxInstances), log: cfg.Logger,
		q: make(chan Record, cfg.QueueSize), flushReq: make(chan chan error), stop: make(chan struct{}), done: make(chan struct{})}
}

func (s *Store) register(reg prometheus.Registerer) error {
	written := prometheus.NewCounter(prometheus.CounterOpts{Name: "shadowsplit_diffstore_written_total",
		Help: "Diff records written to the store."})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shadowsplit_diffstore_dropped_total",
		Help: "Diff records dropped instead of blocking the data plane, by reason (queue_full, disk_full, db_error)."}, []string{"reason"})
	sampled := prometheus.NewCounter(prometheus.CounterOpts{Name: "shadowsplit_diffstore_sampled_out_total",
		Help: "Agreeing pairs not stored because of the agreement sample rate."})
	pruned := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shadowsplit_diffstore_pruned_total",
		Help: "Diff records deleted by retention, by reason (age, size)."}, []string{"reason"})
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shadowsplit_diffstore_queue_length",
		Help: "Diff records waiting to be written."}, func() float64 { return float64(len(s.q)) })
	s.m = metrics{written: written, sampledOut: sampled,
		queueFull: dropped.WithLabelValues(DropQueueFull), diskFull: dropped.WithLabelValues(DropDiskFull), dbErr: dropped.WithLabelValues(DropDBError),
		prunedAge: pruned.WithLabelValues("age"), prunedSize: pruned.WithLabelValues("size"),
		collectors: []prometheus.Collector{written, dropped, sampled, pruned, queue}}
	if reg == nil {
		return nil
	}
	for _, c := range s.m.collectors {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("diffstore: register metrics: %w", err)
		}
	}
	return nil
}

// enqueue hands a record to the writer or drops it. Never blocks.
func (s *Store) enqueue(r Record) {
	select {
	case s.q <- r:
	default:
		s.m.queueFull.Inc()
	}
}

// Flush waits until every record queued before the call is written (or
// dropped), for tests and `report` commands that read right after. It
// returns the last write error, if any.
func (s *Store) Flush(ctx context.Context) error {
	ack := make(chan error, 1)
	select {
	case s.flushReq <- ack:
	case <-s.done:
		return errors.New("diffstore: closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ack:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Scan streams the stored records matching f, oldest first (see
// Backend.Scan). Safe for concurrent use with writes.
func (s *Store) Scan(ctx context.Context, f Filter, fn func(*Record) error) error {
	if !s.migrated.Load() {
		if err := s.b.Migrate(ctx); err != nil {
			return fmt.Errorf("diff store unavailable: %w", err)
		}
		s.migrated.Store(true)
	}
	return s.b.Scan(ctx, f, fn)
}

// Prune runs retention now (the writer also runs it every
// RetentionInterval).
func (s *Store) Prune(ctx context.Context) error {
	var before time.Time
	if s.cfg.MaxAge > 0 {
		before = s.cfg.Now().Add(-s.cfg.MaxAge)
	}
	if before.IsZero() && s.cfg.MaxBytes == 0 {
		return nil
	}
	age, size, err := s.b.Prune(ctx, before, s.cfg.MaxBytes)
	s.m.prunedAge.Add(float64(age))
	s.m.prunedSize.Add(float64(size))
	return err
}

// Close stops accepting work, writes what is queued (within ctx) and
// closes the backend. Records enqueued after Close are dropped.
func (s *Store) Close(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	select {
	case <-s.done:
	case <-ctx.Done():
		// The writer finishes its current batch on its own; the backend
		// closes under it and the batch fails, counted as db_error.
	}
	return s.b.Close()
}

// Driver names the backend in use.
func (s *Store) Driver() string { return s.cfg.Driver }

// run is the single writer: batches by size or FlushInterval, runs
// retention, answers Flush.
func (s *Store) run() {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.FlushInterval)
	defer tick.Stop()
	ret := time.NewTicker(s.cfg.RetentionInterval)
	defer ret.Stop()
	batch := make([]Record, 0, s.cfg.BatchSize)
	var lastErr error
	write := func() {
		if len(batch) > 0 {
			lastErr = s.write(batch)
			clear(batch)
			batch = batch[:0]
		}
	}
	drain := func() {
		for {
			select {
			case r := <-s.q:
				if batch = append(batch, r); len(batch) >= s.cfg.BatchSize {
					write()
				}
			default:
				write()
				return
			}
		}
	}
	for {
		select {
		case r := <-s.q:
			if batch = append(batch, r); len(batch) >= s.cfg.BatchSize {
				write()
			}
		case <-tick.C:
			write()
		case ack := <-s.flushReq:
			lastErr = nil
			drain()
			ack <- lastErr
		case <-ret.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
			if err := s.Prune(ctx); err != nil {
				s.warn("diff store: retention failed", err)
			}
			cancel()
		case <-s.stop:
			drain()
			return
		}
	}
}

// write inserts one batch; on failure the batch is dropped and counted.
func (s *Store) write(batch []Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	if !s.migrated.Load() {
		if err := s.b.Migrate(ctx); err != nil {
			s.m.dbErr.Add(float64(len(batch)))
			s.warn("diff store: database unavailable, records dropped", err)
			return err
		}
		s.migrated.Store(true)
	}
	if err := s.b.Insert(ctx, batch); err != nil {
		if isDiskFull(err) {
			s.m.diskFull.Add(float64(len(batch)))
		} else {
			s.m.dbErr.Add(float64(len(batch)))
		}
		s.warn("diff store: write failed, records dropped", err, "records", len(batch))
		return err
	}
	s.m.written.Add(float64(len(batch)))
	return nil
}

// warn logs at most every 30s so a dead database does not flood the log.
func (s *Store) warn(msg string, err error, kv ...any) {
	if now := time.Now(); now.Sub(s.lastWarn) >= 30*time.Second {
		s.lastWarn = now
		s.log.Warn(msg, append([]any{"driver", s.cfg.Driver, "err", err}, kv...)...)
	}
}
