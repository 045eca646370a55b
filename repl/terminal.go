package repl

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/peterh/liner"
	"golang.org/x/term"

	"librecord/db/atomicfile"
)

// LinerTerminal is the Terminal of a real terminal, with liner as the line
// editor. liner cannot redraw on demand, but it redraws the prompt, the
// partial line and the cursor when the window size changes; so text
// printed while a prompt is up is written above it ("\r\x1b[K" clears the
// prompt row first) and the process sends itself SIGWINCH (FINDINGS.md).
// Use it only when stdin and stdout are terminals.
type LinerTerminal struct {
	l           *liner.State
	out         io.Writer
	historyFile string

	mu         sync.Mutex
	inPrompt   bool
	onPrompt   bool // the cursor is on a prompt row (Ctrl-D leaves it there)
	inPassword bool
	held       []string // printed during a password prompt, shown after
	next       Mark
	// blocks are the last blocks on screen, oldest first, directly above
	// the prompt row; one whose rows are unknown (-1) cannot be rewritten,
	// nor anything above it.
	blocks []block
	closed bool
}

// block is text printed on the terminal and the rows it took.
type block struct {
	mark Mark
	text string
	rows int
}

// maxBlocks bounds what Replace can reach back to.
const maxBlocks = 64

// NewLinerTerminal puts the terminal in raw mode and loads the input
// history from historyFile ("" for none). Close restores the terminal.
func NewLinerTerminal(historyFile string) *LinerTerminal {
	l := liner.NewLiner()
	l.SetCtrlCAborts(true) // so that we know liner printed "^C"
	l.SetTabCompletionStyle(liner.TabCircular)
	t := &LinerTerminal{l: l, out: os.Stdout, historyFile: historyFile}
	if historyFile != "" {
		if f, err := os.Open(historyFile); err == nil {
			l.ReadHistory(f)
			f.Close()
		}
	}
	return t
}

// Close saves the input history and restores the terminal. It is safe to
// call more than once and from a signal handler's goroutine.
func (t *LinerTerminal) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	if t.onPrompt {
		io.WriteString(t.out, "\r\n") // leave the shell a fresh line
	}
	t.mu.Unlock()
	var err error
	if t.historyFile != "" {
		err = t.saveHistory()
	}
	if cerr := t.l.Close(); err == nil {
		err = cerr
	}
	return err
}

func (t *LinerTerminal) saveHistory() error {
	if err := os.MkdirAll(filepath.Dir(t.historyFile), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(t.historyFile, 0o600, func(w io.Writer) error {
		_, err := t.l.WriteHistory(w)
		return err
	})
}

// SetCompleter implements Terminal.
func (t *LinerTerminal) SetCompleter(f func(string) []string) {
	t.l.SetCompleter(liner.Completer(f))
}

// ReadLine implements Terminal. Ctrl-C clears the line and asks again.
// The line is not added to the history: the caller decides (AddHistory).
func (t *LinerTerminal) ReadLine(prompt string) (string, Mark, error) {
	for {
		t.mu.Lock()
		t.inPrompt, t.onPrompt = true, true
		t.mu.Unlock()
		line, err := t.l.Prompt(prompt)
		t.mu.Lock()
		t.inPrompt = false
		t.onPrompt = err != nil && !errors.Is(err, liner.ErrPromptAborted)
		if errors.Is(err, liner.ErrPromptAborted) {
			// liner printed "^C" and a line end: rows we cannot redraw.
			t.add("", -1)
			t.mu.Unlock()
			continue
		}
		if err != nil {
			t.mu.Unlock()
			return "", 0, err
		}
		// The echo is one row (liner's single-line mode scrolls long
		// lines sideways); redrawn, it is cut to fit that row.
		m := t.add(fit(prompt+line, t.cols()-1), 1)
		t.mu.Unlock()
		return line, m, nil
	}
}

// AddHistory implements Terminal.
func (t *LinerTerminal) AddHistory(line string) {
	t.l.AppendHistory(line)
}

// ReadPassword implements Terminal. Nothing is printed while it is up
// (liner's password prompt does not redraw); what came meanwhile is shown
// after.
func (t *LinerTerminal) ReadPassword(prompt string) (string, error) {
	t.mu.Lock()
	t.inPassword = true
	t.mu.Unlock()
	pw, err := t.l.PasswordPrompt(prompt)
	t.mu.Lock()
	t.inPassword = false
	t.add("", -1)
	held := t.held
	t.held = nil
	t.mu.Unlock()
	for _, h := range held {
		t.Print(h)
	}
	if errors.Is(err, liner.ErrPromptAborted) {
		return "", ErrInterrupted
	}
	return pw, err
}

// add records a block on screen. Call with mu held.
func (t *LinerTerminal) add(text string, rows int) Mark {
	t.next++
	t.blocks = append(t.blocks, block{mark: t.next, text: text, rows: rows})
	if len(t.blocks) > maxBlocks {
		t.blocks = append(t.blocks[:0], t.blocks[len(t.blocks)-maxBlocks:]...)
	}
	return t.next
}

// Print implements Terminal.
func (t *LinerTerminal) Print(text string) Mark {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inPassword {
		t.held = append(t.held, text)
		return 0
	}
	t.write("\r\x1b[K" + crlf(text) + "\r\n")
	return t.add(text, t.rows(text))
}

// Bell implements Terminal.
func (t *LinerTerminal) Bell() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		io.WriteString(t.out, "\a")
	}
}

// Replace implements Terminal: it moves up over block m and the blocks
// printed after it, and writes them again with m's new text. It refuses
// when one of them has rows it cannot count, or when they reach above the
// top of the window.
func (t *LinerTerminal) Replace(m Mark, text string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m == 0 || t.inPassword || t.closed {
		return false
	}
	i := len(t.blocks) - 1
	for i >= 0 && t.blocks[i].mark != m {
		i--
	}
	if i < 0 {
		return false
	}
	up := 0
	for _, b := range t.blocks[i:] {
		if b.rows <= 0 {
			return false
		}
		up += b.rows
	}
	if _, height, err := term.GetSize(int(os.Stdout.Fd())); err != nil || up >= height-1 {
		return false
	}
	t.blocks[i].text = text
	t.blocks[i].rows = t.rows(text)
	var b strings.Builder
	b.WriteString("\r\x1b[K" + strings.Repeat("\x1b[1A\r\x1b[K", up))
	for _, bl := range t.blocks[i:] {
		b.WriteString(crlf(bl.text) + "\r\n")
	}
	t.write(b.String())
	return true
}

// write writes s and, when a prompt is up, has liner redraw it.
func (t *LinerTerminal) write(s string) {
	if t.closed {
		return
	}
	io.WriteString(t.out, s)
	if t.inPrompt {
		redraw()
	}
}

func (t *LinerTerminal) cols() int {
	cols, _, err := term.GetSize(int(os.Stdout.Fd()))
	if err != nil {
		return 0
	}
	return cols
}

// fit cuts line to at most cols columns (by width's count).
func fit(line string, cols int) string {
	w := 0
	for i, r := range line {
		rw := width(string(r))
		if w+rw > cols {
			return line[:i]
		}
		w += rw
	}
	return line
}

// rows is how many terminal rows text takes, or -1 when a line may wrap.
func (t *LinerTerminal) rows(text string) int {
	cols := t.cols()
	if cols <= 0 {
		return -1
	}
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if width(line) >= cols {
			return -1
		}
		n++
	}
	return n
}

// width over-estimates the columns line takes: every rune from U+1100 on
// counts as two (wide scripts, emoji), so that a line that may wrap is
// never taken for one that does not. Escape sequences (only ours reach
// here: highlight's) take none.
func width(line string) int {
	w := 0
	inEscape := false
	for _, r := range line {
		switch {
		case r == 0x1b:
			inEscape = true
		case inEscape:
			// A CSI sequence ends with a byte from '@' to '~'.
			inEscape = r == '[' || r < '@' || r > '~'
		case r >= 0x1100:
			w += 2
		default:
			w++
		}
	}
	return w
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
