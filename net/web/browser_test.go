package web_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	stdnet "net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"librecord/crypto"
	"librecord/db"
	lnet "librecord/net"
	"librecord/net/client"
	"librecord/net/server"
	"librecord/net/server/servertest"
	"librecord/net/web"
)

// liveStack is the real server (TCP and web) over a real SQLite file,
// which a test can stop and start again on the same web address.
type liveStack struct {
	t       *testing.T
	path    string
	d       *db.DB
	srv     *server.Server
	web     *web.Server
	tcp     string
	webAddr string
	fp      string
	cfg     server.Config
}

var livePasswords = map[string]string{
	"alice": "alice-password-one",
	"bob":   "bob-password-two!",
	"carol": "carol-password-three",
}

func newLiveStack(t *testing.T) *liveStack {
	t.Helper()
	return newLiveStackWith(t, server.DefaultConfig())
}

func newLiveStackWith(t *testing.T, cfg server.Config) *liveStack {
	t.Helper()
	s := &liveStack{t: t, path: filepath.Join(t.TempDir(), "librecord.db"), webAddr: "127.0.0.1:0", cfg: cfg}
	d := servertest.NewDB(t, s.path)
	if _, err := d.AddSalon(context.Background(), "dev"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"alice", "bob", "carol"} {
		salons := []string{"general"}
		if p != "bob" {
			salons = append(salons, "dev")
		}
		if _, err := d.AddUser(context.Background(), p, livePasswords[p], salons); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *liveStack) start() {
	t := s.t
	t.Helper()
	s.d = servertest.NewDB(t, s.path)
	s.fp = crypto.Fingerprint(s.d.Identity().Public().(ed25519.PublicKey))
	srv, err := server.New(s.d, s.d.Identity(), s.cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := stdnet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wln, err := stdnet.Listen("tcp", s.webAddr)
	if err != nil {
		t.Fatal(err)
	}
	s.srv, s.tcp, s.webAddr = srv, ln.Addr().String(), wln.Addr().String()
	s.web = web.New(srv, web.DefaultConfig(), quiet)
	go srv.Serve(ln)
	go s.web.Serve(wln)
}

func (s *liveStack) stop() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	s.web.Shutdown(ctx)
	s.d.Close()
	s.srv = nil
}

func (s *liveStack) url() string { return "http://" + s.webAddr + "/" }

// terminal logs a net/client session (the terminal client's) in as pseudo.
func (s *liveStack) terminal(pseudo string) *client.Session {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess, err := client.Dial(ctx, client.Config{Addr: s.tcp, CheckIdentity: func(string, ed25519.PublicKey) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Login(ctx, livePasswords[pseudo]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	return sess
}

// browsers starts one headless Chromium for the test; each user gets a
// browser context of its own (its own localStorage).
func browsers(t *testing.T) context.Context {
	t.Helper()
	path := needTool(t, "chromium", "chromium-browser", "google-chrome")
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelRoot(); cancelAlloc() })
	if err := chromedp.Do(root); err != nil { // launches the browser
		t.Fatalf("start chromium: %v", err)
	}
	return root
}

type page struct {
	t    *testing.T
	name string
	ctx  context.Context
}

func newPage(t *testing.T, root context.Context, name string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext(), chromedp.WithListener(func(ev any) {
		// The page's errors and console, in the test log.
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			t.Logf("%s: page exception: %s", name, exceptionText(e.ExceptionDetails))
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			t.Logf("%s: console.%s: %s", name, e.Type, strings.Join(parts, " "))
		}
	}))
	t.Cleanup(cancel)
	// The first run makes the tab and binds it to the context it runs
	// with: run it on ctx itself, not on a context with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	p := &page{t: t, name: name, ctx: ctx}
	p.do(chromedp.EmulateViewport(1280, 800))
	return p
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// eval returns the JSON value of a JavaScript expression.
func (p *page) eval(expr string, out any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr))
	if err != nil {
		p.t.Fatalf("%s: eval %s: %v", p.name, expr, err)
	}
	if err := json.Unmarshal(v, out); err != nil {
		p.t.Fatalf("%s: eval %s: %v (%s)", p.name, expr, err, v)
	}
}

// waitFor waits until a JavaScript expression is true.
func (p *page) waitFor(expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		var state string
		p.eval(`document.getElementById("connect-status").textContent + " | " + document.getElementById("net").textContent + " | " + document.getElementById("login-error").textContent`, &state)
		p.t.Fatalf("%s: waiting for %s: %v (page says: %s)", p.name, expr, err, state)
	}
}

func (p *page) visible(id string) string {
	return fmt.Sprintf(`(e => !!e && !e.hidden && e.offsetParent !== null)(document.getElementById(%q))`, id)
}

// texts are the texts of the messages shown (system messages left out).
func (p *page) texts() []string {
	var out []string
	p.eval(`[...document.querySelectorAll("#messages .msg:not(.system) .text")].map(e => e.textContent)`, &out)
	return out
}

// trustAndLogin answers the first-contact question (checking the
// fingerprint shown is the server's) and logs in.
func (p *page) trustAndLogin(s *liveStack, pseudo string) {
	p.t.Helper()
	p.do(chromedp.Navigate(s.url()))
	p.waitFor(p.visible("trust"))
	var fp string
	p.eval(`document.getElementById("trust-fp").textContent`, &fp)
	if fp != s.fp {
		p.t.Fatalf("%s: trust prompt shows %q, server's fingerprint is %q", p.name, fp, s.fp)
	}
	p.do(chromedp.Click(chromedp.ID("trust-yes")))
	p.login(pseudo, livePasswords[pseudo])
	p.waitFor(p.visible("chat"))
	p.openSalon("general")
}

// openSalon clicks the salon in the list, as a person would.
func (p *page) openSalon(name string) {
	p.t.Helper()
	b, _ := json.Marshal("#" + name)
	find := `[...document.querySelectorAll("#salons .salon")].find(b => b.firstChild.textContent === ` + string(b) + `)`
	p.waitFor(`!!` + find)
	p.eval(find+`.click(), true`, new(bool))
	p.waitFor(`document.getElementById("room-title").textContent === ` + string(b))
}

func (p *page) login(pseudo, password string) {
	p.t.Helper()
	p.waitFor(p.visible("login"))
	p.eval(`document.getElementById("password").value = "", true`, new(bool))
	p.do(chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("login-button")))
}

// say types a message in the composer and sends it with Enter.
func (p *page) say(text string) {
	p.t.Helper()
	p.do(chromedp.Focus(chromedp.ID("text")), chromedp.SendKeys(chromedp.ID("text"), text), pressEnter(false))
}

// pressEnter presses Enter (with Shift) as a keyboard does: one keyDown
// carrying the text, so the page's preventDefault works as in a browser
// (chromedp.KeyEvent adds a separate char event that would type a newline
// anyway).
func pressEnter(shift bool) chromedp.Action[chromedp.Void] {
	var mods int64
	if shift {
		mods = int64(chromedp.ModifierShift)
	}
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
			p := input.DispatchKeyEventParams{Type: typ, Key: "Enter", Code: "Enter",
				WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13, Modifiers: mods}
			if typ == input.DispatchKeyEventTypeKeyDown {
				p.Text, p.UnmodifiedText = "\r", "\r"
			}
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, p); err != nil {
				return err
			}
		}
		return nil
	})
}

func (p *page) waitText(text string) {
	p.t.Helper()
	b, _ := json.Marshal(text)
	p.t.Cleanup(func() {
		if p.t.Failed() {
			p.t.Logf("%s shows %q", p.name, p.texts())
		}
	})
	p.waitFor(`[...document.querySelectorAll("#messages .msg .text")].some(e => e.textContent === ` + string(b) + `)`)
}

func (p *page) screenshot(dir, name string, w, h int64, dark bool) {
	p.t.Helper()
	scheme := "light"
	if dark {
		scheme = "dark"
	}
	p.do(chromedp.EmulateViewport(w, h),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
			})
			return err
		}))
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot %s", file)
}

func screenshotDir(t *testing.T) string {
	if d := os.Getenv("LIBRECORD_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func fetchTexts(t *testing.T, sess *client.Session) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := sess.Fetch(ctx, client.FetchRequest{Salon: "general", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, msg := range m.Messages {
		if !msg.System {
			out = append(out, msg.Text)
		}
	}
	return out
}

func termSend(t *testing.T, sess *client.Session, text string) lnet.Message {
	t.Helper()
	return termSendTo(t, sess, "general", text)
}

func termSendTo(t *testing.T, sess *client.Session, salon, text string) lnet.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cid := fmt.Sprintf("cid-%d", time.Now().UnixNano())
	for {
		ack, err := sess.Send(ctx, salon, text, cid)
		if client.IsCode(err, "rate_limited") && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond) // the send rate: same cid again
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return lnet.Message{ID: ack.Msg, Text: text}
	}
}

// TestBrowserChat: two browser users and one terminal client in one salon
// each see the others' messages, in order, once; hostile text shows as
// text; screenshots at phone and desktop sizes.
func TestBrowserChat(t *testing.T) {
	s := newLiveStack(t)
	root := browsers(t)
	alice := newPage(t, root, "alice")
	bob := newPage(t, root, "bob")
	carol := s.terminal("carol")

	alice.trustAndLogin(s, "alice")
	bob.trustAndLogin(s, "bob")

	want := []string{"hello from alice", "hello from bob", "hello from carol", "line one\nline two"}
	alice.say(want[0])
	bob.waitText(want[0])
	bob.say(want[1])
	alice.waitText(want[1])
	termSend(t, carol, want[2])
	alice.waitText(want[2])
	bob.waitText(want[2])
	// Shift+Enter makes a new line; Enter sends.
	alice.do(chromedp.Focus(chromedp.ID("text")), chromedp.SendKeys(chromedp.ID("text"), "line one"),
		pressEnter(true), chromedp.SendKeys(chromedp.ID("text"), "line two"), pressEnter(false))
	bob.waitText(want[3])
	alice.waitText(want[3])
	for _, p := range []*page{alice, bob} {
		if got := p.texts(); !slices.Equal(got, want) {
			t.Fatalf("%s shows %q, want %q", p.name, got, want)
		}
	}
	if got := fetchTexts(t, carol); !slices.Equal(got, want) {
		t.Fatalf("terminal fetches %q, want %q", got, want)
	}

	// Hostile text: markup, a bidi override, and a mention.
	xss := `<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>`
	bidi := "evil \u202egnp.exe and \u2066isolate\u2069"
	// A mention while the tab is hidden makes a notification (the browser's
	// Notification and visibility are stubbed: headless has neither).
	alice.eval(`window.__notes = [];
		window.Notification = class { constructor(title, o) { window.__notes.push(title + "|" + o.body); } };
		window.Notification.permission = "granted";
		Object.defineProperty(document, "hidden", { value: true, configurable: true }); true`, new(bool))
	termSend(t, carol, xss)
	termSend(t, carol, bidi)
	termSend(t, carol, "hey alice, look")
	alice.waitText("hey alice, look")
	alice.waitText(xss)
	var imgs int
	var title string
	alice.eval(`document.querySelectorAll("#messages img, #messages script").length`, &imgs)
	alice.eval(`document.title`, &title)
	if imgs != 0 || title != "Librecord" {
		t.Fatalf("markup from the server became elements (%d) or ran (title %q)", imgs, title)
	}
	alice.waitText("evil \ufffdgnp.exe and \ufffdisolate\ufffd")
	var mention bool
	alice.eval(`[...document.querySelectorAll("#messages .msg.mention .text")].some(e => e.textContent === "hey alice, look")`, &mention)
	if !mention {
		t.Fatal("mention of alice not highlighted")
	}
	var notes []string
	alice.eval(`window.__notes`, &notes)
	if !slices.Equal(notes, []string{"carol in #general|hey alice, look"}) {
		t.Fatalf("notifications %q, want one for the mention", notes)
	}
	alice.eval(`delete document.hidden, true`, new(bool))

	// who lists the three sessions.
	alice.do(chromedp.Click(chromedp.ID("who-button")))
	alice.waitFor(`document.getElementById("who-list").textContent === "Connected in #general: alice, bob, carol"`)

	dir := screenshotDir(t)
	alice.screenshot(dir, "chat-360x640.png", 360, 640, false)
	alice.screenshot(dir, "chat-1280x800.png", 1280, 800, false)
	alice.screenshot(dir, "chat-360x640-dark.png", 360, 640, true)

	// Another salon: unread and mention counts, then its history page by page.
	for i := 1; i <= 54; i++ {
		termSendTo(t, carol, "dev", fmt.Sprintf("dev %d", i))
	}
	termSendTo(t, carol, "dev", "alice: can you review?")
	alice.waitFor(`[...document.querySelectorAll("#salons .salon")].some(b => b.textContent === "#dev55" && b.querySelector(".badge.mention"))`)
	alice.screenshot(dir, "unread-1280x800.png", 1280, 800, false)
	alice.openSalon("dev")
	alice.waitText("alice: can you review?")
	alice.waitFor(alice.visible("older"))
	if n := len(alice.texts()); n != 50 {
		t.Fatalf("dev opened with %d messages, want the latest 50", n)
	}
	alice.do(chromedp.Click(chromedp.ID("older")))
	alice.waitFor(`document.querySelectorAll("#messages .msg").length === 55`)
	if got := alice.texts(); got[0] != "dev 1" || got[54] != "alice: can you review?" {
		t.Fatalf("dev after loading older: %q ... %q", got[0], got[len(got)-1])
	}
	alice.waitFor(`document.getElementById("older").hidden`)

	// Log out says bye, and so does leaving the page: the server ends the
	// sessions at once, not after the 30 s session timeout.
	bob.do(chromedp.Click(chromedp.ID("logout")))
	bob.waitFor(bob.visible("login"))
	waitGone(t, carol, "bob")
	alice.do(chromedp.Navigate("about:blank"))
	waitGone(t, carol, "alice")
}

// waitGone waits until who no longer lists pseudo (within 10 s, a third of
// the session timeout: only a bye ends a session that fast).
func waitGone(t *testing.T, sess *client.Session, pseudo string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		who, err := sess.Who(ctx, "general")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(who, pseudo) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s still listed: %v", pseudo, who)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowserTrustAndLogin: the trust prompt, a wrong password, a changed
// identity key refused with an explanation.
func TestBrowserTrustAndLogin(t *testing.T) {
	s := newLiveStack(t)
	root := browsers(t)
	p := newPage(t, root, "alice")
	p.do(chromedp.Navigate(s.url()))
	p.waitFor(p.visible("trust"))
	dir := screenshotDir(t)
	p.screenshot(dir, "trust-360x640.png", 360, 640, false)

	// Not trusted: nothing more happens, no login form.
	p.do(chromedp.Click(chromedp.ID("trust-no")))
	p.waitFor(`document.getElementById("connect-status").textContent.startsWith("Not trusted")`)
	var loginShown bool
	p.eval(p.visible("login"), &loginShown)
	if loginShown {
		t.Fatal("login form shown for an untrusted server")
	}

	// Trusted, then a wrong password.
	p.do(chromedp.Reload())
	p.waitFor(p.visible("trust"))
	p.do(chromedp.Click(chromedp.ID("trust-yes")))
	p.login("alice", "not-the-password")
	p.waitFor(`document.getElementById("login-error").textContent === "Wrong password."`)
	p.screenshot(dir, "wrong-password-360x640.png", 360, 640, false)
	// By keyboard alone: the password field has the focus after an error,
	// typing replaces the selected text, Enter submits; then the composer
	// has the focus and Enter sends.
	p.waitFor(`document.activeElement.id === "password"`)
	p.do(chromedp.KeyEvent(livePasswords["alice"]), pressEnter(false))
	p.waitFor(p.visible("chat"))
	p.waitFor(`document.activeElement.id === "text"`)
	p.do(chromedp.KeyEvent("typed by keyboard"), pressEnter(false))
	p.waitText("typed by keyboard")

	// Known key: a reload asks nothing.
	p.do(chromedp.Reload())
	p.waitFor(p.visible("login"))

	// The pinned key differs from the server's: refused, explained.
	p.eval(`localStorage.setItem("librecord.known", btoa("x".repeat(32))), true`, new(bool))
	p.do(chromedp.Reload())
	p.waitFor(p.visible("changed"))
	var newFP string
	p.eval(`document.getElementById("changed-new").textContent`, &newFP)
	if newFP != s.fp {
		t.Fatalf("changed-key warning shows %q, server is %q", newFP, s.fp)
	}
	p.eval(p.visible("login"), &loginShown)
	if loginShown {
		t.Fatal("login form shown for a changed key")
	}
	p.screenshot(dir, "changed-key-360x640.png", 360, 640, false)
}

// TestBrowserServerRestart: lines typed while the server is down are kept;
// after the restart the page logs in again and sends each once.
func TestBrowserServerRestart(t *testing.T) {
	s := newLiveStack(t)
	root := browsers(t)
	p := newPage(t, root, "alice")
	p.trustAndLogin(s, "alice")
	p.say("before restart")
	p.waitText("before restart")

	s.stop()
	// The countdown to the next attempt shows while the server is away.
	p.waitFor(`/^offline, retrying in \d+ s$/.test(document.getElementById("net").textContent)`)
	p.say("typed while down 1")
	p.say("typed while down 2")
	p.waitFor(`document.querySelectorAll("#outbox .msg.pending").length === 2`)
	s.start()

	p.waitFor(`document.querySelectorAll("#outbox .msg.pending").length === 0`)
	p.waitText("typed while down 2")
	carol := s.terminal("carol")
	want := []string{"before restart", "typed while down 1", "typed while down 2"}
	if got := fetchTexts(t, carol); !slices.Equal(got, want) {
		t.Fatalf("stored %q, want %q (each once, in order)", got, want)
	}
	if got := p.texts(); !slices.Equal(got, want) {
		t.Fatalf("page shows %q, want %q", got, want)
	}
}

func exceptionText(d *runtime.ExceptionDetails) string {
	s := d.Text
	if d.Exception != nil {
		s += " " + d.Exception.Description
	}
	return s
}

// TestBrowserRevokedSalon: the host revokes the open salon; the page says
// so, drops it from the list, and a line sent there is reported refused.
func TestBrowserRevokedSalon(t *testing.T) {
	s := newLiveStack(t)
	root := browsers(t)
	p := newPage(t, root, "alice")
	p.trustAndLogin(s, "alice")
	p.openSalon("dev")
	if _, err := s.d.Revoke(context.Background(), "dev", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	p.waitFor(`document.getElementById("chat-error").textContent.startsWith("Cannot read #dev")`)
	p.waitFor(`![...document.querySelectorAll("#salons .salon")].some(b => b.firstChild.textContent === "#dev")`)
	p.say("into the void")
	p.waitFor(`document.getElementById("chat-error").textContent.startsWith("Not sent")`)
	p.waitFor(`document.querySelectorAll("#outbox .msg").length === 0`)
	p.openSalon("general")
	p.say("still here")
	p.waitText("still here")

	// Changing the password (PROTOCOL.md 3.8): a wrong current password is
	// refused; the right one gets a new password, which logs in.
	p.do(chromedp.Click(chromedp.ID("passwd-button")))
	p.waitFor(`document.activeElement.id === "passwd-current"`)
	p.do(chromedp.KeyEvent("not my password"), pressEnter(false))
	p.waitFor(`document.getElementById("passwd-result").textContent === "That is not your current password."`)
	p.waitFor(`(e => e.selectionStart === 0 && e.selectionEnd === e.value.length)(document.getElementById("passwd-current"))`)
	p.do(chromedp.KeyEvent(livePasswords["alice"]), pressEnter(false))
	const shown = "Your new password (shown once; write it down): "
	p.waitFor(`document.getElementById("passwd-result").textContent.startsWith("` + shown + `")`)
	var result string
	p.eval(`document.getElementById("passwd-result").textContent`, &result)
	fresh := strings.TrimPrefix(result, shown)
	if len(fresh) < 12 || fresh == livePasswords["alice"] {
		t.Fatalf("new password shown as %q", result)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for pw, ok := range map[string]bool{fresh: true, livePasswords["alice"]: false} {
		sess, err := client.Dial(ctx, client.Config{Addr: s.tcp, CheckIdentity: func(string, ed25519.PublicKey) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		_, err = sess.Login(ctx, pw)
		sess.Close()
		if ok && err != nil {
			t.Errorf("login with the new password: %v", err)
		}
		if !ok && !client.IsCode(err, lnet.CodeAuth) {
			t.Errorf("login with the old password: %v, want auth", err)
		}
	}
}

// TestBrowserSlowTrust: a person who takes longer over the fingerprint than
// the server's login timeout still gets the login form, and logs in.
func TestBrowserSlowTrust(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.LoginTimeout = 1500 * time.Millisecond
	s := newLiveStackWith(t, cfg)
	root := browsers(t)
	p := newPage(t, root, "alice")
	p.do(chromedp.Navigate(s.url()))
	p.waitFor(p.visible("trust"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for s.srv.Conns() != 0 { // the server gave up on the page's connection
		if ctx.Err() != nil {
			t.Fatal("the server kept the connection past its login timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.do(chromedp.Click(chromedp.ID("trust-yes")))
	p.login("alice", livePasswords["alice"])
	p.waitFor(p.visible("chat"))
}

// TestBrowserUnsentSurviveReload: lines typed while the server is down
// survive leaving and reloading the page in that tab, and go out once at
// the next login.
func TestBrowserUnsentSurviveReload(t *testing.T) {
	s := newLiveStack(t)
	root := browsers(t)
	p := newPage(t, root, "alice")
	p.trustAndLogin(s, "alice")
	p.say("first")
	p.waitText("first")
	s.stop()
	p.say("kept across the reload")
	p.waitFor(`document.querySelectorAll("#outbox .msg.pending").length === 1`)
	// The tab leaves the page (the server, which also serves the page, is
	// down), then comes back once it is up again.
	p.do(chromedp.Navigate("about:blank"))
	s.start()
	p.do(chromedp.Navigate(s.url()))
	p.login("alice", livePasswords["alice"])
	p.waitFor(p.visible("chat"))
	p.waitText("kept across the reload")
	carol := s.terminal("carol")
	want := []string{"first", "kept across the reload"}
	if got := fetchTexts(t, carol); !slices.Equal(got, want) {
		t.Fatalf("stored %q, want %q", got, want)
	}
	p.waitFor(`sessionStorage.getItem("librecord.unsent") === null`)
}
