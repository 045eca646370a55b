package net

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzFrameReader feeds arbitrary streams to a reader with a small portion
// limit. It must not panic, must keep its line buffer and payload within
// bounds, must hand out only payloads whose canonical frame reads back the
// same, and must keep going after every non-fatal FrameError.
func FuzzFrameReader(f *testing.F) {
	vectors, _ := filepath.Glob("testdata/*_*")
	for _, v := range vectors {
		data, err := os.ReadFile(v)
		if err == nil {
			if _, stream, ok := bytes.Cut(data, []byte("\n--\n")); ok {
				f.Add(stream)
			}
		}
	}
	f.Add(AppendFrame(nil, bytes.Repeat([]byte{0xfe}, 700)))
	f.Add([]byte("MESS1//aGk\\\\MESS1\r\n\r\n(ENDMESS)\nMESS1//AA\\\\MESS1\nMESS2//A\\\\MESS2\n(ENDMESS)\n"))
	const maxPortions = 4
	f.Fuzz(func(t *testing.T, stream []byte) {
		fr := NewFrameReader(bufio.NewReaderSize(bytes.NewReader(stream), 16), maxPortions)
		for range len(stream) + 2 {
			payload, n, err := fr.Next()
			if cap(fr.line) > MaxLineBytes+2 {
				t.Fatalf("line buffer grew to %d", cap(fr.line))
			}
			if len(fr.payload) > MaxPayload(maxPortions) {
				t.Fatalf("payload buffer holds %d bytes", len(fr.payload))
			}
			var fe *FrameError
			switch {
			case err == nil:
				if len(payload) == 0 || n != EncodedPortions(len(payload)) || n > maxPortions {
					t.Fatalf("frame of %d bytes in %d portions", len(payload), n)
				}
				again, n2, err := NewFrameReader(bufio.NewReader(bytes.NewReader(AppendFrame(nil, payload))), maxPortions).Next()
				if err != nil || n2 != n || !bytes.Equal(again, payload) {
					t.Fatalf("canonical frame reads back %x, %d, %v", again, n2, err)
				}
			case errors.As(err, &fe):
				if fe.Msg == "" {
					t.Fatal("FrameError without a message")
				}
				if fe.Fatal {
					if _, _, err2 := fr.Next(); err2 != err {
						t.Fatal("fatal error is not sticky")
					}
					return
				}
			case err == io.EOF:
				return
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
		t.Fatal("reader made no progress")
	})
}

// FuzzFrameRoundTrip checks AppendFrame against the reader for any payload.
func FuzzFrameRoundTrip(f *testing.F) {
	f.Add([]byte("x"))
	f.Add(bytes.Repeat([]byte{0}, 193))
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) == 0 {
			return
		}
		frame := AppendFrame(nil, payload)
		if len(frame) != FrameLen(len(payload)) {
			t.Fatalf("FrameLen %d, frame %d bytes", FrameLen(len(payload)), len(frame))
		}
		got, n, err := NewFrameReader(bufio.NewReader(bytes.NewReader(frame)), 0).Next()
		if err != nil || n != EncodedPortions(len(payload)) || !bytes.Equal(got, payload) {
			t.Fatalf("round trip: %v, %d portions", err, n)
		}
	})
}
