package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	lnet "librecord/net"
)

// lastID is the newest message id of salon s (0 when empty): one probe of
// the (salon_id, id) index.
const lastID = `coalesce((SELECT max(m.id) FROM messages m WHERE m.salon_id = s.id), 0)`

// querySalonByName reads a salon and its last id (plan_test.go checks its
// plan).
const querySalonByName = `SELECT s.id, s.name, ` + lastID + ` FROM salons s WHERE s.name = ?`

// salonByName finds a salon by name, ignoring case.
func salonByName(ctx context.Context, q querier, name string) (Salon, error) {
	var s Salon
	if !lnet.ValidName(name) {
		return s, &NotFoundError{Kind: KindSalon, Name: name}
	}
	err := q.QueryRowContext(ctx, querySalonByName, name).Scan(&s.ID, &s.Name, &s.Last)
	if isNoRows(err) {
		return s, &NotFoundError{Kind: KindSalon, Name: name}
	}
	return s, storageErr(err)
}

// Salon returns a salon by name (ignoring case), or ErrNotFound.
func (d *DB) Salon(ctx context.Context, name string) (Salon, error) {
	return salonByName(ctx, d.r, name)
}

// Access returns the salon if the user may open it (name matched ignoring
// case), or ErrNotFound when the salon does not exist, the name is
// malformed, or the user has no access.
func (d *DB) Access(ctx context.Context, userID int64, name string) (Salon, error) {
	var s Salon
	if !lnet.ValidName(name) {
		return s, ErrNotFound
	}
	err := d.queryRow(ctx, `
		SELECT s.id, s.name, `+lastID+`
		FROM salons s JOIN grants g ON g.salon_id = s.id AND g.user_id = ?
		WHERE s.name = ?`, userID, name).Scan(&s.ID, &s.Name, &s.Last)
	if isNoRows(err) {
		return s, ErrNotFound
	}
	return s, storageErr(err)
}

// UserSalons lists the salons the user may open, by name, with their last id.
func (d *DB) UserSalons(ctx context.Context, userID int64) ([]Salon, error) {
	rows, err := d.query(ctx, `
		SELECT s.id, s.name, `+lastID+`
		FROM salons s JOIN grants g ON g.salon_id = s.id AND g.user_id = ?
		ORDER BY s.name COLLATE NOCASE`, userID)
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	salons := []Salon{}
	for rows.Next() {
		var s Salon
		if err := rows.Scan(&s.ID, &s.Name, &s.Last); err != nil {
			return nil, storageErr(err)
		}
		salons = append(salons, s)
	}
	return salons, storageErr(rows.Err())
}

// UsersWithAccess returns the ids of the users who may open salon.
func (d *DB) UsersWithAccess(ctx context.Context, salonID int64) ([]int64, error) {
	rows, err := d.query(ctx, `SELECT user_id FROM grants WHERE salon_id = ? ORDER BY user_id`, salonID)
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	ids := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, storageErr(err)
		}
		ids = append(ids, id)
	}
	return ids, storageErr(rows.Err())
}

// AddSalon creates a salon. ErrInvalidName or ErrDuplicate (ignoring case).
func (d *DB) AddSalon(ctx context.Context, name string) (Salon, error) {
	if err := checkName("salon name", name); err != nil {
		return Salon{}, err
	}
	tx, err := d.begin(ctx)
	if err != nil {
		return Salon{}, storageErr(err)
	}
	defer tx.Rollback()
	if s, err := salonByName(ctx, tx, name); err == nil {
		return Salon{}, fmt.Errorf("%w: salon %q exists", ErrDuplicate, s.Name)
	} else if !isNotFound(err) {
		return Salon{}, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO salons (name, created_at) VALUES (?, ?)`, name, time.Now().UnixMilli())
	if err != nil {
		return Salon{}, storageErr(err)
	}
	s := Salon{Name: name}
	if s.ID, err = res.LastInsertId(); err != nil {
		return Salon{}, err
	}
	return s, storageErr(tx.Commit())
}

// RemoveSalon deletes a salon and its grants. A salon with messages is
// refused with ErrSalonNotEmpty unless purge is set; with purge its
// messages are deleted too (export them first), for good as
// RemoveMessages deletes them: with secure_delete on, then the WAL
// truncated. When the removal committed but the WAL could not be
// truncated, the error says so and is ErrWALBusy. Users who had access
// lose it at once: a parked fetch answers forbidden when it wakes.
func (d *DB) RemoveSalon(ctx context.Context, name string, purge bool) error {
	tx, err := d.beginDelete(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	s, err := salonByName(ctx, tx, name)
	if err != nil {
		return err
	}
	if s.Last != 0 && !purge {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE salon_id = ?`, s.ID).Scan(&n); err != nil {
			return storageErr(err)
		}
		return fmt.Errorf("salon %q: %w (%d)", s.Name, ErrSalonNotEmpty, n)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE salon_id = ?`, s.ID)
	if err != nil {
		return storageErr(err)
	}
	purged, err := res.RowsAffected()
	if err != nil {
		return storageErr(err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM salons WHERE id = ?`, s.ID); err != nil {
		return storageErr(err)
	}
	if err := tx.Commit(); err != nil {
		return storageErr(err)
	}
	if purged > 0 {
		if err := d.TruncateWAL(ctx); err != nil {
			return fmt.Errorf("salon %q and its messages removed, but %w", s.Name, err)
		}
	}
	return nil
}

// Grant gives the users named by pseudos access to salon, all or none:
// ErrNotFound names the first unknown salon or user. It returns the
// pseudos (as created) that did not have access before.
func (d *DB) Grant(ctx context.Context, salon string, pseudos []string) ([]string, error) {
	return d.changeAccess(ctx, salon, pseudos,
		`INSERT OR IGNORE INTO grants (user_id, salon_id) VALUES (?, ?)`)
}

// Revoke takes access to salon away from the users named by pseudos, all
// or none: ErrNotFound names the first unknown salon or user. It returns
// the pseudos that had access before. Their parked fetches on that salon
// answer forbidden when they wake.
func (d *DB) Revoke(ctx context.Context, salon string, pseudos []string) ([]string, error) {
	return d.changeAccess(ctx, salon, pseudos,
		`DELETE FROM grants WHERE user_id = ? AND salon_id = ?`)
}

func (d *DB) changeAccess(ctx context.Context, salon string, pseudos []string, stmt string) ([]string, error) {
	tx, err := d.begin(ctx)
	if err != nil {
		return nil, storageErr(err)
	}
	defer tx.Rollback()
	s, err := salonByName(ctx, tx, salon)
	if err != nil {
		return nil, err
	}
	changed := []string{}
	for _, p := range pseudos {
		u, err := userByName(ctx, tx, p)
		if err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, stmt, u.ID, s.ID)
		if err != nil {
			return nil, storageErr(err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			changed = append(changed, u.Pseudo)
		}
	}
	return changed, storageErr(tx.Commit())
}

// SalonInfo is a salon as the admin lists it.
type SalonInfo struct {
	Salon
	Messages  int64         // how many messages it holds
	Members   []string      // pseudos with access, sorted
	Retention time.Duration // messages older than this are deleted; 0 keeps them
}

// Salons lists every salon with its message count and members, by name.
func (d *DB) Salons(ctx context.Context) ([]SalonInfo, error) {
	rows, err := d.r.QueryContext(ctx, `
		SELECT s.id, s.name, `+lastID+`,
		       (SELECT count(*) FROM messages m WHERE m.salon_id = s.id),
		       s.retain_ms, u.pseudo
		FROM salons s
		LEFT JOIN grants g ON g.salon_id = s.id
		LEFT JOIN users u ON u.id = g.user_id
		ORDER BY s.name COLLATE NOCASE, s.id, u.pseudo COLLATE NOCASE`)
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	out := []SalonInfo{}
	for rows.Next() {
		var si SalonInfo
		var member sql.NullString
		var retainMS int64
		if err := rows.Scan(&si.ID, &si.Name, &si.Last, &si.Messages, &retainMS, &member); err != nil {
			return nil, storageErr(err)
		}
		si.Retention = time.Duration(retainMS) * time.Millisecond
		if len(out) == 0 || out[len(out)-1].ID != si.ID {
			si.Members = []string{}
			out = append(out, si)
		}
		if member.Valid {
			last := &out[len(out)-1]
			last.Members = append(last.Members, member.String)
		}
	}
	return out, storageErr(rows.Err())
}
