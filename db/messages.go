package db

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"librecord/crypto"
)

// messageAD binds a blob to every clear column of its row: moved to
// another row or salon, or with its sender, time or cid changed, it no
// longer opens.
func messageAD(id, salonID, at, userID int64, cid string, portions int) []byte {
	ad := make([]byte, 0, 64+len(cid))
	ad = append(ad, "librecord/v1/message\x00"...)
	ad = binary.BigEndian.AppendUint64(ad, uint64(id))
	ad = binary.BigEndian.AppendUint64(ad, uint64(salonID))
	ad = binary.BigEndian.AppendUint64(ad, uint64(at))
	ad = binary.BigEndian.AppendUint64(ad, uint64(userID))
	ad = binary.BigEndian.AppendUint64(ad, uint64(portions))
	return append(ad, cid...)
}

// The plaintext of a blob: flags byte, uvarint pseudo length, pseudo, text.
const flagSystem = 1

func encodeBody(pseudo, text string, system bool) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(pseudo)+len(text))
	var flags byte
	if system {
		flags |= flagSystem
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(pseudo)))
	b = append(b, pseudo...)
	return append(b, text...)
}

func decodeBody(b []byte) (pseudo, text string, system bool, err error) {
	if len(b) < 2 {
		return "", "", false, errors.New("short message body")
	}
	system = b[0]&flagSystem != 0
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > uint64(len(b)-1-k) {
		return "", "", false, errors.New("bad message body")
	}
	rest := b[1+k:]
	return string(rest[:n]), string(rest[n:]), system, nil
}

func checkNew(m NewMessage) error {
	switch {
	case m.System != (m.UserID == 0):
		return errors.New("store message: a system message, and only it, has user id 0")
	case m.System && m.Cid != "":
		return errors.New("store message: a system message has no cid")
	case !m.System && m.Cid == "":
		return errors.New("store message: a user message needs a cid")
	case !utf8.ValidString(m.Text) || !utf8.ValidString(m.Pseudo):
		return errors.New("store message: invalid UTF-8")
	case m.Portions < 0:
		return errors.New("store message: negative portions")
	}
	return nil
}

type cidKey struct {
	user int64
	cid  string
}

// insertQueries are the statements of InsertMessages, in this order: the
// last id, a cid already stored, a salon that exists, the insert.
var insertQueries = []string{
	`SELECT seq FROM sqlite_sequence WHERE name = 'messages'`,
	queryCid,
	`SELECT 1 FROM salons WHERE id = ?`,
	`INSERT INTO messages (id, salon_id, at, user_id, cid, portions, blob) VALUES (?, ?, ?, ?, ?, ?, ?)`,
}

// InsertMessages stores msgs in one transaction and one sync (group
// commit), deduplicating by (user, cid). When it returns nil every message
// is durable. On error nothing is stored (ErrBusy for lock or disk trouble).
// A message whose salon no longer exists gets Stored.Err = ErrNotFound.
//
// Ids are global, increase with time and are never reused (AUTOINCREMENT);
// At is the server's UTC time, to the millisecond.
func (d *DB) InsertMessages(ctx context.Context, msgs []NewMessage) ([]Stored, error) {
	out := make([]Stored, len(msgs))
	for _, m := range msgs {
		if err := checkNew(m); err != nil {
			return nil, err
		}
	}
	if len(msgs) == 0 {
		return out, nil
	}
	// Prepared on the writer before the transaction takes its only
	// connection.
	ws, err := d.writerStmts(ctx, insertQueries)
	if err != nil {
		return nil, storageErr(err)
	}
	tx, err := d.begin(ctx)
	if err != nil {
		return nil, storageErr(err)
	}
	defer tx.Rollback()
	// Inside the write lock the statements are bounded (index lookups and
	// inserts; the commit's fsync cannot be interrupted anyway): they do
	// not watch ctx, which costs the driver a goroutine per statement.
	ctx = context.WithoutCancel(ctx)
	seqStmt, findCid, salonQuery, insert := tx.StmtContext(ctx, ws[0]), tx.StmtContext(ctx, ws[1]), tx.StmtContext(ctx, ws[2]), tx.StmtContext(ctx, ws[3])
	defer seqStmt.Close()
	defer findCid.Close()
	defer salonQuery.Close()
	defer insert.Close()

	// The next ids, known inside the write lock, so that each blob is
	// sealed bound to its own id and written once.
	var last int64
	err = seqStmt.QueryRowContext(ctx).Scan(&last)
	if err != nil && !isNoRows(err) {
		return nil, storageErr(err)
	}

	at := time.Now().UTC().Truncate(time.Millisecond)
	atMs := at.UnixMilli()
	seen := make(map[cidKey]int)
	salonExists := make(map[int64]bool)
	for i, m := range msgs {
		if m.Cid != "" {
			k := cidKey{m.UserID, m.Cid}
			if j, ok := seen[k]; ok {
				out[i] = out[j]
				out[i].Duplicate = true
				continue
			}
			var s Stored
			var prevAt int64
			err := findCid.QueryRowContext(ctx, m.UserID, m.Cid).Scan(&s.ID, &prevAt, &s.Portions)
			if err == nil {
				s.At, s.Duplicate = time.UnixMilli(prevAt).UTC(), true
				out[i] = s
				continue
			}
			if !isNoRows(err) {
				return nil, storageErr(err)
			}
		}
		exists, known := salonExists[m.SalonID]
		if !known {
			var one int
			err := salonQuery.QueryRowContext(ctx, m.SalonID).Scan(&one)
			if err != nil && !isNoRows(err) {
				return nil, storageErr(err)
			}
			exists = err == nil
			salonExists[m.SalonID] = exists
		}
		if !exists {
			out[i] = Stored{Err: fmt.Errorf("salon %d: %w", m.SalonID, ErrNotFound)}
			continue
		}
		last++
		var cid any
		if m.Cid != "" {
			cid = m.Cid
		}
		blob := d.ring.Load().data.Seal(encodeBody(m.Pseudo, m.Text, m.System), messageAD(last, m.SalonID, atMs, m.UserID, m.Cid, m.Portions))
		if _, err := insert.ExecContext(ctx, last, m.SalonID, atMs, m.UserID, cid, m.Portions, blob); err != nil {
			return nil, storageErr(err)
		}
		out[i] = Stored{ID: last, At: at, Portions: m.Portions}
		if m.Cid != "" {
			seen[cidKey{m.UserID, m.Cid}] = i
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, storageErr(err)
	}
	return out, nil
}

// LookupCid returns what a previous send of cid by this user stored, if any.
func (d *DB) LookupCid(ctx context.Context, userID int64, cid string) (Stored, bool, error) {
	var s Stored
	var at int64
	err := d.queryRow(ctx, queryCid, userID, cid).Scan(&s.ID, &at, &s.Portions)
	if isNoRows(err) {
		return Stored{}, false, nil
	}
	if err != nil {
		return Stored{}, false, storageErr(err)
	}
	s.At, s.Duplicate = time.UnixMilli(at).UTC(), true
	return s, true, nil
}

// The page queries: one range scan of messages_by_salon each
// (plan_test.go checks their plans). They ask for one row more than limit
// to learn whether more exist.
const (
	selectMessages = `SELECT m.id, m.salon_id, s.name, m.at, m.user_id, coalesce(m.cid, ''), m.portions, m.blob
	FROM messages m JOIN salons s ON s.id = m.salon_id `
	queryLatest = selectMessages + `WHERE m.salon_id = ? ORDER BY m.id DESC LIMIT ?`
	queryBefore = selectMessages + `WHERE m.salon_id = ? AND m.id < ? ORDER BY m.id DESC LIMIT ?`
	queryAfter  = selectMessages + `WHERE m.salon_id = ? AND m.id > ? ORDER BY m.id ASC LIMIT ?`
)

// queryCid finds an earlier send of a cid by a user (messages_by_cid).
const queryCid = `SELECT id, at, portions FROM messages WHERE user_id = ? AND cid = ?`

// Latest returns the newest limit messages of a salon, oldest first, and
// whether older ones exist.
func (d *DB) Latest(ctx context.Context, salonID int64, limit int) ([]Message, bool, error) {
	return d.LatestWithin(ctx, salonID, limit, Budget{})
}

// Before returns the limit messages just before id, oldest first, and
// whether older ones exist.
func (d *DB) Before(ctx context.Context, salonID, id int64, limit int) ([]Message, bool, error) {
	return d.BeforeWithin(ctx, salonID, id, limit, Budget{})
}

// After returns the first limit messages after id, oldest first, and
// whether newer ones exist.
func (d *DB) After(ctx context.Context, salonID, id int64, limit int) ([]Message, bool, error) {
	return d.AfterWithin(ctx, salonID, id, limit, Budget{})
}

// A Budget lets a page query stop reading once the messages it has read
// can no longer all fit in the caller's answer. Each message read counts
// PerMessage plus the length of its text; reading goes nearest the cursor
// first and stops after the first message that takes the count over
// Bytes. For that to lose nothing, the answer must spend at least that
// count on each message. The zero Budget (Bytes 0) reads up to the limit.
type Budget struct {
	Bytes      int
	PerMessage int
}

// LatestWithin is Latest stopped early by b: the messages read, oldest
// first, the last read (the oldest) being the one that went over b, and
// whether older ones exist.
func (d *DB) LatestWithin(ctx context.Context, salonID int64, limit int, b Budget) ([]Message, bool, error) {
	return d.page(ctx, limit, b, true, d.reportUnreadable, queryLatest, salonID, noLimit)
}

// BeforeWithin is Before stopped early by b, like LatestWithin.
func (d *DB) BeforeWithin(ctx context.Context, salonID, id int64, limit int, b Budget) ([]Message, bool, error) {
	return d.page(ctx, limit, b, true, d.reportUnreadable, queryBefore, salonID, id, noLimit)
}

// AfterWithin is After stopped early by b: the messages read, oldest
// first, the last (the newest) being the one that went over b, and
// whether newer ones exist.
func (d *DB) AfterWithin(ctx context.Context, salonID, id int64, limit int, b Budget) ([]Message, bool, error) {
	return d.page(ctx, limit, b, false, d.reportUnreadable, queryAfter, salonID, id, noLimit)
}

// noLimit is the LIMIT of the page queries (SQLite: none). Rows are read
// one by one and page stops after limit readable ones; a fixed SQL limit
// would let rows that fail to decrypt shorten a page, or stall a cursor
// on a run of them.
const noLimit = -1

// page reads messages in query order: at most limit readable ones, and
// within b. A row that fails to decrypt (corruption, tampering) is
// skipped and handed to skip with its id; it never stops the page.
func (d *DB) page(ctx context.Context, limit int, b Budget, newestFirst bool, skip func(id int64, err error), query string, args ...any) ([]Message, bool, error) {
	if limit < 1 {
		return nil, false, fmt.Errorf("read messages: limit %d must be positive", limit)
	}
	rows, err := d.query(ctx, query, args...)
	if err != nil {
		return nil, false, storageErr(err)
	}
	defer rows.Close()
	msgs := make([]Message, 0, min(limit, 512))
	more := false
	used := 0
	for rows.Next() {
		// The row past the limit or the budget only says more exist: it
		// is not decrypted.
		if len(msgs) == limit || (b.Bytes > 0 && used > b.Bytes) {
			more = true
			break
		}
		m, err := d.scanMessage(rows)
		var unreadable *unreadableRow
		if errors.As(err, &unreadable) {
			skip(unreadable.id, unreadable.err)
			continue
		}
		if err != nil {
			return nil, false, err
		}
		msgs = append(msgs, m)
		used += b.PerMessage + len(m.Text)
	}
	if err := rows.Err(); err != nil {
		return nil, false, storageErr(err)
	}
	if newestFirst {
		slices.Reverse(msgs)
	}
	return msgs, more, nil
}

func (d *DB) scanMessage(rows *sql.Rows) (Message, error) {
	var m Message
	var salonID, at, userID int64
	var cid string
	var portions int
	var blob []byte
	if err := rows.Scan(&m.ID, &salonID, &m.Salon, &at, &userID, &cid, &portions, &blob); err != nil {
		return m, storageErr(err)
	}
	pt, err := d.ring.Load().open(blob, messageAD(m.ID, salonID, at, userID, cid, portions))
	if err != nil {
		return m, &unreadableRow{m.ID, crypto.ErrDecrypt}
	}
	m.Pseudo, m.Text, m.System, err = decodeBody(pt)
	if err != nil {
		return m, &unreadableRow{m.ID, err}
	}
	m.At = time.UnixMilli(at).UTC()
	return m, nil
}

// unreadableRow is a message row whose blob does not open (or does not
// decode): page skips it.
type unreadableRow struct {
	id  int64
	err error
}

func (e *unreadableRow) Error() string { return fmt.Sprintf("message %d: %v", e.id, e.err) }
func (e *unreadableRow) Unwrap() error { return e.err }

// UnreadableError is returned by Export after every readable message was
// exported: it names the messages that failed to decrypt.
type UnreadableError struct {
	IDs []int64 // ascending
}

func (e *UnreadableError) Error() string {
	const show = 20
	ids := make([]string, 0, min(len(e.IDs), show))
	for _, id := range e.IDs[:min(len(e.IDs), show)] {
		ids = append(ids, strconv.FormatInt(id, 10))
	}
	more := ""
	if len(e.IDs) > show {
		more = fmt.Sprintf(" and %d more", len(e.IDs)-show)
	}
	return fmt.Sprintf("%d unreadable messages (failed to decrypt: corrupt or tampered with), ids %s%s",
		len(e.IDs), strings.Join(ids, ", "), more)
}

// maxReported bounds the ids of unreadable rows remembered so that each
// is logged once.
const maxReported = 4096

// reportUnreadable logs a row that failed to decrypt, once per id (the
// first maxReported of them; then once that more exist).
func (d *DB) reportUnreadable(id int64, err error) {
	d.unreadMu.Lock()
	_, seen := d.unreadSeen[id]
	full := len(d.unreadSeen) >= maxReported
	if !seen && !full {
		if d.unreadSeen == nil {
			d.unreadSeen = map[int64]struct{}{}
		}
		d.unreadSeen[id] = struct{}{}
	}
	first := full && !d.unreadFull
	if full {
		d.unreadFull = true
	}
	log := d.log
	d.unreadMu.Unlock()
	switch {
	case log == nil:
	case !seen && !full:
		log.Error("message unreadable, skipped", "msg", id, "err", err)
	case first:
		log.Error("more unreadable messages, skipped without logging each", "logged", maxReported)
	}
}

// SetLogger gives the database a logger for what it skips (messages
// that fail to decrypt). Without one, it logs nothing.
func (d *DB) SetLogger(log *slog.Logger) {
	d.unreadMu.Lock()
	d.log = log
	d.unreadMu.Unlock()
}

// exportPage is how many messages Export holds in memory at once.
const exportPage = 500

// Export calls fn on every message of salon (by name, ignoring case),
// oldest first, that existed when it started. It reads page by page, so
// memory stays flat however long the history, and it holds no lock
// between pages. ErrNotFound if there is no such salon. Messages that
// fail to decrypt are skipped; once every other one went to fn, Export
// returns an *UnreadableError naming them.
func (d *DB) Export(ctx context.Context, salon string, fn func(Message) error) error {
	s, err := d.Salon(ctx, salon)
	if err != nil {
		return err
	}
	var bad []int64
	skip := func(id int64, _ error) {
		// Rows come in id order; one past the last readable row of a
		// page is seen again by the next page.
		if id <= s.Last && (len(bad) == 0 || id > bad[len(bad)-1]) {
			bad = append(bad, id)
		}
	}
	unreadable := func() error {
		if len(bad) == 0 {
			return nil
		}
		return &UnreadableError{IDs: bad}
	}
	var after int64
	for after < s.Last {
		msgs, _, err := d.page(ctx, exportPage, Budget{}, false, skip,
			queryAfter, s.ID, after, noLimit)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return unreadable()
		}
		for _, m := range msgs {
			if m.ID > s.Last {
				return unreadable()
			}
			if err := fn(m); err != nil {
				return err
			}
			after = m.ID
		}
	}
	return unreadable()
}
