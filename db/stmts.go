package db

import (
	"context"
	"database/sql"
	"sync"
)

// stmts holds the statements of the hot paths (login, the fetch cycle, the
// group commit), each prepared once per pool and reused. Parsing and
// planning a statement costs SQLite as much as running one of our indexed
// lookups, or more (BenchmarkFetchCycle); database/sql prepares a Stmt
// of a pool again on each pooled connection the first time it runs there
// (at most four readers, one writer) and keeps it.
type stmts struct {
	m sync.Map // stmtKey -> *sql.Stmt
}

type stmtKey struct {
	pool  *sql.DB
	query string
}

// prepared returns query prepared on pool, preparing it on first use.
func (s *stmts) prepared(ctx context.Context, pool *sql.DB, query string) (*sql.Stmt, error) {
	k := stmtKey{pool, query}
	if st, ok := s.m.Load(k); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.m.LoadOrStore(k, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// close closes every statement (before the pools).
func (s *stmts) close() {
	s.m.Range(func(k, st any) bool {
		st.(*sql.Stmt).Close()
		s.m.Delete(k)
		return true
	})
}

// short detaches a read from ctx's cancellation once ctx is checked: our
// reads are index lookups and bounded pages that take microseconds (WAL:
// they never wait for the writer), while a cancellable context costs the
// driver and database/sql a goroutine each per query to watch it (5% of
// the server's CPU under the community load of librecord bench).
func short(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

// queryRow runs a one-row query of the read pool through its prepared
// statement.
func (d *DB) queryRow(ctx context.Context, query string, args ...any) *rowResult {
	ctx, err := short(ctx)
	if err != nil {
		return &rowResult{err: err}
	}
	st, err := d.stmts.prepared(ctx, d.r, query)
	if err != nil {
		return &rowResult{err: err}
	}
	return &rowResult{row: st.QueryRowContext(ctx, args...)}
}

// query runs a query of the read pool through its prepared statement.
func (d *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx, err := short(ctx)
	if err != nil {
		return nil, err
	}
	st, err := d.stmts.prepared(ctx, d.r, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// writerStmts returns queries prepared once on the writer, for a
// transaction to use with Tx.StmtContext (which reuses the writer's
// prepared statement: closing the transaction's copy leaves it prepared).
// Call it before beginning the transaction: the writer has one
// connection, which the transaction holds.
func (d *DB) writerStmts(ctx context.Context, queries []string) ([]*sql.Stmt, error) {
	out := make([]*sql.Stmt, len(queries))
	for i, q := range queries {
		st, err := d.stmts.prepared(ctx, d.w, q)
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

// rowResult is a *sql.Row that may carry the error of preparing it.
type rowResult struct {
	row *sql.Row
	err error
}

func (r *rowResult) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.row.Scan(dest...)
}
