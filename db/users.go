package db

import (
	"context"
	"crypto/hmac"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"librecord/crypto"
	lnet "librecord/net"
)

// passwordID computes a password's identifier: Argon2id with the
// install-wide salt (at most MaxConcurrentHashes at once), then an HMAC
// under the password key (stored wrapped by the data key), so that a
// stolen file without the passphrase gives an offline guesser nothing to
// test guesses against. The password key survives a key rotation: users
// keep their passwords.
func (d *DB) passwordID(ctx context.Context, password string) ([]byte, error) {
	select {
	case d.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	h := crypto.HashPassword(password, d.pwSalt, d.pwKDF)
	<-d.hashSlots
	defer clear(h)
	return d.pwKey.MAC(h), nil
}

// Authenticate hashes password (Argon2id, bounded concurrency) and returns
// the matching user, or ErrAuth; ErrDisabled (which is also ErrAuth) when
// the user is disabled. The cost is the same whether or not a user
// matches: one hash, one indexed lookup.
func (d *DB) Authenticate(ctx context.Context, password string) (Credential, error) {
	if len(password) == 0 || len(password) > crypto.MaxPasswordLength {
		return Credential{}, ErrAuth
	}
	id, err := d.passwordID(ctx, password)
	if err != nil {
		return Credential{}, err
	}
	c := Credential{Hash: id}
	var disabled bool
	err = d.queryRow(ctx, `SELECT id, pseudo, disabled_at IS NOT NULL FROM users WHERE pass_id = ?`, id).Scan(&c.UserID, &c.Pseudo, &disabled)
	if isNoRows(err) {
		return Credential{}, ErrAuth
	}
	if err != nil {
		return Credential{}, storageErr(err)
	}
	if disabled {
		return Credential{}, ErrDisabled
	}
	return c, nil
}

// Valid reports whether the credential still names an enabled user with
// the same password: false once the user is removed, disabled or their
// password reset.
func (d *DB) Valid(ctx context.Context, c Credential) (bool, error) {
	var one int
	err := d.queryRow(ctx, `SELECT 1 FROM users WHERE id = ? AND pass_id = ? AND disabled_at IS NULL`, c.UserID, c.Hash).Scan(&one)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, storageErr(err)
	}
	return true, nil
}

func checkPassword(password string) error {
	if err := crypto.CheckPassword(password); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidPassword, strings.TrimPrefix(err.Error(), "password "))
	}
	return nil
}

// AddUser creates a user with password and access to salons (each must
// exist). It returns ErrInvalidName, ErrInvalidPassword, ErrDuplicate,
// ErrPasswordInUse or ErrNotFound (naming the salon), storing nothing then.
func (d *DB) AddUser(ctx context.Context, pseudo, password string, salons []string) (User, error) {
	if err := checkName("pseudo", pseudo); err != nil {
		return User{}, err
	}
	id, err := d.newPasswordID(ctx, password)
	if err != nil {
		return User{}, err
	}
	tx, err := d.begin(ctx)
	if err != nil {
		return User{}, storageErr(err)
	}
	defer tx.Rollback()
	if err := pseudoFree(ctx, tx, pseudo); err != nil {
		return User{}, err
	}
	if err := passwordFree(ctx, tx, id, 0); err != nil {
		return User{}, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO users (pseudo, pass_id, created_at) VALUES (?, ?, ?)`,
		pseudo, id, time.Now().UnixMilli())
	if err != nil {
		return User{}, storageErr(err)
	}
	u := User{Pseudo: pseudo, Salons: []string{}}
	if u.ID, err = res.LastInsertId(); err != nil {
		return User{}, err
	}
	for _, name := range salons {
		s, err := salonByName(ctx, tx, name)
		if err != nil {
			return User{}, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO grants (user_id, salon_id) VALUES (?, ?)`, u.ID, s.ID); err != nil {
			return User{}, storageErr(err)
		}
		u.Salons = append(u.Salons, s.Name)
	}
	if err := tx.Commit(); err != nil {
		return User{}, storageErr(err)
	}
	u.Salons = sortedUnique(u.Salons)
	return u, nil
}

func sortedUnique(names []string) []string {
	sort.Slice(names, func(i, j int) bool { return strings.ToLower(names[i]) < strings.ToLower(names[j]) })
	out := names[:0]
	for i, n := range names {
		if i == 0 || !strings.EqualFold(n, names[i-1]) {
			out = append(out, n)
		}
	}
	return out
}

func pseudoFree(ctx context.Context, tx *sql.Tx, pseudo string) error {
	var taken string
	err := tx.QueryRowContext(ctx, `SELECT pseudo FROM users WHERE pseudo = ?`, pseudo).Scan(&taken)
	if isNoRows(err) {
		return nil
	}
	if err != nil {
		return storageErr(err)
	}
	return fmt.Errorf("%w: user %q exists", ErrDuplicate, taken)
}

// passwordFree returns ErrPasswordInUse if a user other than except has id.
func passwordFree(ctx context.Context, tx *sql.Tx, id []byte, except int64) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE pass_id = ? AND id != ?`, id, except).Scan(&one)
	if isNoRows(err) {
		return nil
	}
	if err != nil {
		return storageErr(err)
	}
	return ErrPasswordInUse
}

// userByName finds a user by pseudo, ignoring case.
func userByName(ctx context.Context, q querier, pseudo string) (User, error) {
	var u User
	if !lnet.ValidName(pseudo) {
		return u, &NotFoundError{Kind: KindUser, Name: pseudo}
	}
	err := q.QueryRowContext(ctx, `SELECT id, pseudo, disabled_at IS NOT NULL FROM users WHERE pseudo = ?`, pseudo).Scan(&u.ID, &u.Pseudo, &u.Disabled)
	if isNoRows(err) {
		return u, &NotFoundError{Kind: KindUser, Name: pseudo}
	}
	return u, storageErr(err)
}

// RemoveUser deletes a user and their grants. Their messages stay in the
// history (the pseudo is inside each blob), the pseudo is free again, and
// their live sessions end at their next request (Valid turns false).
func (d *DB) RemoveUser(ctx context.Context, pseudo string) error {
	tx, err := d.begin(ctx)
	if err != nil {
		return storageErr(err)
	}
	defer tx.Rollback()
	u, err := userByName(ctx, tx, pseudo)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, u.ID); err != nil {
		return storageErr(err)
	}
	return storageErr(tx.Commit())
}

// newPasswordID checks a new password and returns its identifier, to be
// computed before taking the write lock: Argon2id is the slow part.
func (d *DB) newPasswordID(ctx context.Context, password string) ([]byte, error) {
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	return d.passwordID(ctx, password)
}

// setPassID gives user the password identifier id, unless another user
// has it (ErrPasswordInUse). With old set, only if the user's identifier
// is still old and the user is enabled (ErrAuth otherwise).
func setPassID(ctx context.Context, tx *sql.Tx, user int64, id, old []byte) error {
	if err := passwordFree(ctx, tx, id, user); err != nil {
		return err
	}
	q, args := `UPDATE users SET pass_id = ? WHERE id = ?`, []any{id, user}
	if old != nil {
		q, args = q+` AND pass_id = ? AND disabled_at IS NULL`, append(args, old)
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return storageErr(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return storageErr(err)
	} else if n != 1 {
		return ErrAuth
	}
	return nil
}

// ResetPassword gives a user a new password; their live sessions end at
// their next request (Valid turns false).
func (d *DB) ResetPassword(ctx context.Context, pseudo, password string) error {
	id, err := d.newPasswordID(ctx, password)
	if err != nil {
		return err
	}
	tx, err := d.begin(ctx)
	if err != nil {
		return storageErr(err)
	}
	defer tx.Rollback()
	u, err := userByName(ctx, tx, pseudo)
	if err != nil {
		return err
	}
	if err := setPassID(ctx, tx, u.ID, id, nil); err != nil {
		return err
	}
	return storageErr(tx.Commit())
}

// ChangePassword gives the user of c the password next, when current is
// their password and c is still valid (PROTOCOL.md 3.8), and returns the
// user's new credential. It returns ErrAuth, storing nothing, when
// current is not the password c was made from, or when c is no longer
// valid (the user was removed, disabled or their password changed
// meanwhile); ErrInvalidPassword or ErrPasswordInUse for next. The
// user's other sessions end at their next request (Valid turns false for
// the old credential).
func (d *DB) ChangePassword(ctx context.Context, c Credential, current, next string) (Credential, error) {
	if len(current) == 0 || len(current) > crypto.MaxPasswordLength {
		return Credential{}, ErrAuth
	}
	old, err := d.passwordID(ctx, current)
	if err != nil {
		return Credential{}, err
	}
	if !hmac.Equal(old, c.Hash) {
		return Credential{}, ErrAuth
	}
	id, err := d.newPasswordID(ctx, next)
	if err != nil {
		return Credential{}, err
	}
	tx, err := d.begin(ctx)
	if err != nil {
		return Credential{}, storageErr(err)
	}
	defer tx.Rollback()
	if err := setPassID(ctx, tx, c.UserID, id, old); err != nil {
		return Credential{}, err
	}
	if err := tx.Commit(); err != nil {
		return Credential{}, storageErr(err)
	}
	return Credential{UserID: c.UserID, Pseudo: c.Pseudo, Hash: id}, nil
}

// Users lists every user with their salons, sorted by pseudo.
func (d *DB) Users(ctx context.Context) ([]User, error) {
	rows, err := d.r.QueryContext(ctx, `
		SELECT u.id, u.pseudo, u.disabled_at IS NOT NULL, s.name
		FROM users u
		LEFT JOIN grants g ON g.user_id = u.id
		LEFT JOIN salons s ON s.id = g.salon_id
		ORDER BY u.pseudo COLLATE NOCASE, u.id, s.name COLLATE NOCASE`)
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	users := []User{}
	for rows.Next() {
		var id int64
		var pseudo string
		var disabled bool
		var salon sql.NullString
		if err := rows.Scan(&id, &pseudo, &disabled, &salon); err != nil {
			return nil, storageErr(err)
		}
		if len(users) == 0 || users[len(users)-1].ID != id {
			users = append(users, User{ID: id, Pseudo: pseudo, Disabled: disabled, Salons: []string{}})
		}
		if salon.Valid {
			u := &users[len(users)-1]
			u.Salons = append(u.Salons, salon.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, storageErr(err)
	}
	return users, nil
}

// User returns one user by pseudo (ignoring case) with their salons, or ErrNotFound.
func (d *DB) User(ctx context.Context, pseudo string) (User, error) {
	u, err := userByName(ctx, d.r, pseudo)
	if err != nil {
		return u, err
	}
	salons, err := d.UserSalons(ctx, u.ID)
	if err != nil {
		return u, err
	}
	u.Salons = make([]string, len(salons))
	for i, s := range salons {
		u.Salons[i] = s.Name
	}
	return u, nil
}

// Changes returns the database's change counter: it moves with every
// committed change that can take access or a login away (a user removed,
// disabled, enabled or given a new password, a grant revoked or given, a
// salon renamed or removed) or remove messages, whichever process made it
// (migration 00004's triggers). A server may cache access and
// credentials as long as it has not moved.
func (d *DB) Changes(ctx context.Context) (int64, error) {
	var n int64
	if err := d.queryRow(ctx, `SELECT n FROM changes WHERE id = 1`).Scan(&n); err != nil {
		return 0, storageErr(err)
	}
	return n, nil
}
