package net

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newReader(s string, maxPortions int) *FrameReader {
	return NewFrameReader(bufio.NewReader(strings.NewReader(s)), maxPortions)
}

// portionLine builds one portion line by hand, independently of AppendFrame.
func portionLine(n int, text string) string {
	num := itoa(n)
	return "MESS" + num + "//" + text + `\\MESS` + num + "\n"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// handFrame builds the frame of payload from the text of section 1 alone.
func handFrame(payload []byte) string {
	text := base64.RawURLEncoding.EncodeToString(payload)
	var sb strings.Builder
	for i := 1; len(text) > 0; i++ {
		n := min(len(text), 256)
		sb.WriteString(portionLine(i, text[:n]))
		text = text[n:]
	}
	sb.WriteString("(ENDMESS)\n")
	return sb.String()
}

func TestPortionSizesKnownAnswer(t *testing.T) {
	// 450 bytes are 600 base64 characters: portions of 256, 256 and 88.
	payload := bytes.Repeat([]byte{0xAB}, 450)
	frame := string(AppendFrame(nil, payload))
	lines := strings.Split(strings.TrimSuffix(frame, "\n"), "\n")
	if len(lines) != 4 || lines[3] != "(ENDMESS)" {
		t.Fatalf("got %d lines, want 3 portions and (ENDMESS): %q", len(lines), frame)
	}
	for i, want := range []int{256, 256, 88} {
		num := itoa(i + 1)
		l := lines[i]
		prefix, suffix := "MESS"+num+"//", `\\MESS`+num
		if !strings.HasPrefix(l, prefix) || !strings.HasSuffix(l, suffix) {
			t.Fatalf("line %d = %q, want %s...%s", i+1, l, prefix, suffix)
		}
		if got := len(l) - len(prefix) - len(suffix); got != want {
			t.Errorf("portion %d holds %d characters, want %d", i+1, got, want)
		}
	}
	if got := EncodedPortions(450); got != 3 {
		t.Errorf("EncodedPortions(450) = %d, want 3", got)
	}
	if frame != handFrame(payload) {
		t.Errorf("AppendFrame differs from the hand-built frame")
	}
	if got := FrameLen(450); got != len(frame) {
		t.Errorf("FrameLen(450) = %d, want %d", got, len(frame))
	}
}

func TestEncodedPortionsAndMaxPayload(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{1, 1}, {192, 1}, {193, 2}, {384, 2}, {385, 3}, {196608, 1024}, {196609, 1025},
	} {
		if got := EncodedPortions(tc.n); got != tc.want {
			t.Errorf("EncodedPortions(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	if got := MaxPayload(DefaultMaxPortions); got != 196608 {
		t.Errorf("MaxPayload(1024) = %d, want 196608", got)
	}
	if EncodedPortions(MaxPayload(7)) != 7 || EncodedPortions(MaxPayload(7)+1) != 8 {
		t.Errorf("MaxPayload(7) is not the largest payload of 7 portions")
	}
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 2, 3, 4, 191, 192, 193, 383, 384, 385, 1000, 64 << 10, MaxPayload(DefaultMaxPortions)}
	for range 200 {
		sizes = append(sizes, 1+r.IntN(3000))
	}
	var stream bytes.Buffer
	var payloads [][]byte
	for _, n := range sizes {
		p := randomBytes(r, n)
		payloads = append(payloads, p)
		frame := AppendFrame(nil, p)
		if string(frame) != handFrame(p) {
			t.Fatalf("size %d: AppendFrame differs from the hand-built frame", n)
		}
		if len(frame) != FrameLen(n) {
			t.Fatalf("size %d: FrameLen = %d, frame is %d bytes", n, FrameLen(n), len(frame))
		}
		stream.Write(frame)
		stream.WriteString("\n\r\n") // empty lines between frames are ignored
	}
	fr := NewFrameReader(bufio.NewReader(&stream), DefaultMaxPortions)
	for i, want := range payloads {
		got, portions, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d (%d bytes): %v", i, len(want), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d (%d bytes): payload differs", i, len(want))
		}
		if portions != EncodedPortions(len(want)) {
			t.Fatalf("frame %d: %d portions, want %d", i, portions, EncodedPortions(len(want)))
		}
	}
	if _, _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestWriteFrameOneWrite(t *testing.T) {
	var w countingWriter
	if err := WriteFrame(&w, make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 {
		t.Errorf("%d writes, want 1", w.writes)
	}
	if err := WriteFrame(&w, nil); !errors.Is(err, ErrEmptyPayload) {
		t.Errorf("empty payload: %v, want ErrEmptyPayload", err)
	}
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

func TestCRLFAndEmptyLines(t *testing.T) {
	payload := bytes.Repeat([]byte("librecord "), 50)
	frame := strings.ReplaceAll(handFrame(payload), "\n", "\r\n\n\r\n")
	got, n, err := newReader("\n\n"+frame, 0).Next()
	if err != nil || !bytes.Equal(got, payload) || n != 3 {
		t.Fatalf("got %q, %d, %v", got, n, err)
	}
}

const (
	full = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	end  = "(ENDMESS)\n"
	good = "MESS1//aGk\\\\MESS1\n" + end // "hi"
)

func TestBrokenFrames(t *testing.T) {
	if len(full) != 256 {
		t.Fatalf("test constant full has %d characters", len(full))
	}
	for _, tc := range []struct {
		name, in, msg string
	}{
		{"Hole", portionLine(1, full) + portionLine(3, "AA") + end, "missing portion 2"},
		{"FirstMissing", portionLine(2, "AA") + end, "missing portion 1"},
		{"Repeat", portionLine(1, full) + portionLine(1, full) + end, "portion 1 repeated"},
		{"Reorder", portionLine(1, full) + portionLine(2, full) + portionLine(4, "AA") + portionLine(3, full) + end, "missing portion 3"},
		{"Zero", portionLine(0, "AA") + end, "expected portion 1, got 0"},
		{"LeadingZero", "MESS01//AA\\\\MESS01\n" + end, "portion number with leading zero"},
		{"LeadingZeroLater", portionLine(1, full) + "MESS02//AA\\\\MESS02\n" + end, "portion number with leading zero"},
		{"HugeNumber", "MESS99999999999999999999999//AA\\\\MESS99999999999999999999999\n" + end, "missing portion 1"},
		{"Empty", portionLine(1, "") + end, "portion 1 is empty"},
		{"TooLong", portionLine(1, full+"A") + end, "portion 1 is longer than 256 characters"},
		{"Alphabet", portionLine(1, full) + portionLine(2, "AA+A") + end, "character outside base64url in portion 2"},
		{"Padding", portionLine(1, "AA==") + end, "character outside base64url in portion 1"},
		{"InnerCR", portionLine(1, "AA\rA") + end, "character outside base64url in portion 1"},
		{"ShortNotLast", portionLine(1, "AAAA") + portionLine(2, "AA") + end, "portion 1 is shorter than 256 characters but is not the last"},
		{"ShortNotLastLater", portionLine(1, full) + portionLine(2, "AAAA") + portionLine(3, "AA") + end, "portion 2 is shorter than 256 characters but is not the last"},
		{"OneModFour", portionLine(1, "AAAAA") + end, "portion 1 is not valid base64url"},
		{"TrailingBits", portionLine(1, "AB") + end, "portion 1 is not valid base64url"},
		{"CloseMismatch", "MESS1//AA\\\\MESS2\n" + end, "closing tag of portion 1 does not match"},
		{"CloseLeadingZero", "MESS1//AA\\\\MESS01\n" + end, "closing tag of portion 1 does not match"},
		{"NoClose", "MESS1//AAAA\n" + end, "portion 1 has no closing tag"},
		{"SingleBackslash", "MESS1//AAAA\\MESS1\n" + end, "portion 1 has no closing tag"},
		{"Stray", "hello\n" + end, "line is neither a portion nor (ENDMESS)"},
		{"StrayMidFrame", portionLine(1, full) + "hello\n" + end, "line is neither a portion nor (ENDMESS)"},
		{"NoNumber", "MESS//AA\\\\MESS\n" + end, "line is neither a portion nor (ENDMESS)"},
		{"SpaceAfterEnd", portionLine(1, "AA") + "(ENDMESS) \n" + end, "line is neither a portion nor (ENDMESS)"},
		{"Lowercase", "mess1//AA\\\\mess1\n" + end, "line is neither a portion nor (ENDMESS)"},
		{"Whitespace", " \n" + end, "line is neither a portion nor (ENDMESS)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := newReader(tc.in+good, 0)
			_, _, err := fr.Next()
			var fe *FrameError
			if !errors.As(err, &fe) || fe.Msg != tc.msg || fe.Fatal {
				t.Fatalf("got %v, want FrameError %q", err, tc.msg)
			}
			// Resynchronised: the frame after the broken one reads fine.
			got, n, err := fr.Next()
			if err != nil || string(got) != "hi" || n != 1 {
				t.Fatalf("after the broken frame: %q, %d, %v; want the next frame", got, n, err)
			}
		})
	}
}

func TestEndmessAloneEndsTheBrokenFrame(t *testing.T) {
	// The defect is found at (ENDMESS): nothing more is discarded.
	fr := newReader(end+good, 0)
	_, _, err := fr.Next()
	if err == nil || err.Error() != "(ENDMESS) with no portion before it" {
		t.Fatalf("got %v", err)
	}
	if got, _, err := fr.Next(); err != nil || string(got) != "hi" {
		t.Fatalf("next frame: %q, %v", got, err)
	}
}

func TestDiscardUpToEndmess(t *testing.T) {
	// After a defect, everything up to the (ENDMESS) ending the broken frame
	// goes, good-looking portions included; the following frame is read.
	in := portionLine(2, "AA") + portionLine(1, "aGk") + "junk\n" + end + good
	fr := newReader(in, 0)
	if _, _, err := fr.Next(); err == nil || err.Error() != "missing portion 1" {
		t.Fatalf("got %v", err)
	}
	if got, _, err := fr.Next(); err != nil || string(got) != "hi" {
		t.Fatalf("next frame: %q, %v", got, err)
	}
	if _, _, err := fr.Next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestTooManyPortions(t *testing.T) {
	payload := make([]byte, MaxPayload(3)+1)
	fr := newReader(handFrame(payload)+good, 3)
	_, _, err := fr.Next()
	if err == nil || err.Error() != "frame has more than 3 portions" {
		t.Fatalf("got %v", err)
	}
	if got, _, err := fr.Next(); err != nil || string(got) != "hi" {
		t.Fatalf("next frame: %q, %v", got, err)
	}
	// Exactly the limit is fine.
	payload = make([]byte, MaxPayload(3))
	if got, n, err := newReader(handFrame(payload), 3).Next(); err != nil || n != 3 || len(got) != len(payload) {
		t.Fatalf("frame of exactly 3 portions: %d bytes, %d, %v", len(got), n, err)
	}
}

// countingReader counts the bytes the frame reader pulled from the stream.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestLongLineIsFatalAndBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
	}{
		{"301", strings.Repeat("A", 301) + "\n"},
		{"301CRLF", strings.Repeat("A", 301) + "\r\n"},
		{"PortionOver300", "MESS1//" + strings.Repeat("A", 290) + "\\\\MESS1\n"},
		{"TenMegabytes", strings.Repeat("x", 10<<20)},
		{"InDiscard", "junk\n" + strings.Repeat("x", 5000) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := &countingReader{r: strings.NewReader(tc.line + good)}
			fr := NewFrameReader(bufio.NewReaderSize(cr, 4096), 0)
			_, _, err := fr.Next()
			if strings.HasPrefix(tc.name, "InDiscard") {
				_, _, err = fr.Next()
			}
			var fe *FrameError
			if !errors.As(err, &fe) || !fe.Fatal || fe.Msg != "line longer than 300 bytes" {
				t.Fatalf("got %v, want fatal line error", err)
			}
			if cr.n > 16384 {
				t.Errorf("read %d bytes of the stream before giving up", cr.n)
			}
			if _, _, err2 := fr.Next(); err2 != err {
				t.Errorf("after a fatal error Next returned %v", err2)
			}
		})
	}
	// 300 bytes plus CRLF is within the limit: a stray line, not fatal.
	_, _, err := newReader(strings.Repeat("A", 300)+"\r\n"+end, 0).Next()
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Fatal {
		t.Fatalf("300-byte line: %v", err)
	}
}

func TestSmallBufioBuffer(t *testing.T) {
	payload := bytes.Repeat([]byte{1, 2, 3}, 1000)
	fr := NewFrameReader(bufio.NewReaderSize(strings.NewReader(handFrame(payload)), 16), 0)
	got, _, err := fr.Next()
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
}

func TestEOF(t *testing.T) {
	for _, in := range []string{"", "\n\n", portionLine(1, full), portionLine(1, full) + "MESS2//AA"} {
		if _, _, err := newReader(in, 0).Next(); err != io.EOF {
			t.Errorf("%q: got %v, want io.EOF", in, err)
		}
	}
}

// timeoutError is what a net.Conn returns when a read deadline passes.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// stutterReader returns a timeout after every chunk of data.
type stutterReader struct {
	chunks []string
	fail   bool
}

func (s *stutterReader) Read(p []byte) (int, error) {
	if s.fail {
		s.fail = false
		return 0, timeoutError{}
	}
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.chunks[0])
	s.chunks[0] = s.chunks[0][n:]
	if s.chunks[0] == "" {
		s.chunks = s.chunks[1:]
	}
	s.fail = true
	return n, nil
}

func TestResumeAfterTimeout(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 500)
	frame := handFrame(payload)
	// Cut the frame mid-line and mid-portion.
	sr := &stutterReader{chunks: []string{frame[:100], frame[100:300], frame[300:]}}
	fr := NewFrameReader(bufio.NewReaderSize(sr, 16), 0)
	timeouts := 0
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		got, _, err := fr.Next()
		if err == nil {
			if !bytes.Equal(got, payload) {
				t.Fatalf("payload differs after %d timeouts", timeouts)
			}
			if timeouts == 0 {
				t.Fatal("the reader never saw a timeout")
			}
			return
		}
		if _, ok := err.(timeoutError); !ok {
			t.Fatalf("got %v, want a timeout or the frame", err)
		}
		timeouts++
	}
	t.Fatal("frame never completed")
}

func TestPayloadReuseAllocations(t *testing.T) {
	payload := bytes.Repeat([]byte{7}, 64<<10)
	frame := []byte(handFrame(payload))
	src := bytes.NewReader(frame)
	br := bufio.NewReader(src)
	fr := NewFrameReader(br, 0)
	if _, _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		src.Reset(frame)
		br.Reset(src)
		if _, _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("%.0f allocations per 64 KiB frame once buffers are warm, want at most 1", allocs)
	}
}

// TestVectors runs testdata/good_* and testdata/fail_*. Each file has
// header lines up to a line "--", then the exact stream bytes:
//
//	payload-hex: <hex of the expected payload>   (good_)
//	portions: <count>                            (good_)
//	error: <exact FrameError text>               (fail_)
//	fatal: true                                  (fail_, optional)
//	then-hex: <hex of the payload of the next frame> (fail_, optional)
func TestVectors(t *testing.T) {
	files, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, f := range files {
		name := f.Name()
		good, fail := strings.HasPrefix(name, "good_"), strings.HasPrefix(name, "fail_")
		if !good && !fail {
			continue
		}
		ran++
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile("testdata/" + name)
			if err != nil {
				t.Fatal(err)
			}
			head, stream, ok := bytes.Cut(raw, []byte("\n--\n"))
			if !ok {
				t.Fatal("no -- line")
			}
			h := map[string]string{}
			for _, l := range strings.Split(string(head), "\n") {
				k, v, _ := strings.Cut(l, ": ")
				h[k] = v
			}
			maxPortions := 0
			if v, ok := h["max-portions"]; ok {
				maxPortions = atoi(t, v)
			}
			fr := NewFrameReader(bufio.NewReader(bytes.NewReader(stream)), maxPortions)
			got, n, err := fr.Next()
			if good {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if want := unhex(t, h["payload-hex"]); !bytes.Equal(got, want) {
					t.Fatalf("payload %x, want %x", got, want)
				}
				if n != atoi(t, h["portions"]) {
					t.Fatalf("%d portions, want %s", n, h["portions"])
				}
				return
			}
			var fe *FrameError
			if !errors.As(err, &fe) || fe.Msg != h["error"] || fe.Fatal != (h["fatal"] == "true") {
				t.Fatalf("got %#v, want error %q fatal=%q", err, h["error"], h["fatal"])
			}
			if v, ok := h["then-hex"]; ok {
				got, _, err := fr.Next()
				if err != nil || !bytes.Equal(got, unhex(t, v)) {
					t.Fatalf("next frame: %x, %v; want %s", got, err, v)
				}
			}
		})
	}
	if ran < 10 {
		t.Fatalf("only %d vectors in testdata", ran)
	}
}

func atoi(t *testing.T, s string) int {
	n := 0
	if s == "" {
		t.Fatal("missing number in vector header")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("bad number %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}
