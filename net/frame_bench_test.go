package net

import (
	"bufio"
	"bytes"
	"fmt"
	"testing"
)

var benchSizes = []int{300, 64 << 10}

func BenchmarkFrameEncode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			payload := bytes.Repeat([]byte{0x5a}, size)
			var buf []byte
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf = AppendFrame(buf[:0], payload)
			}
		})
	}
}

// BenchmarkFrameDecode reads the same frame over and over through one
// FrameReader, as a connection does.
func BenchmarkFrameDecode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			frame := AppendFrame(nil, bytes.Repeat([]byte{0x5a}, size))
			src := bytes.NewReader(frame)
			br := bufio.NewReader(src)
			fr := NewFrameReader(br, 0)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				src.Reset(frame)
				br.Reset(src)
				if _, _, err := fr.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFrameDecodeFreshReader is the first frame of a connection: the
// payload buffer grows while the frame arrives.
func BenchmarkFrameDecodeFreshReader(b *testing.B) {
	frame := AppendFrame(nil, bytes.Repeat([]byte{0x5a}, 64<<10))
	b.ReportAllocs()
	b.SetBytes(64 << 10)
	for b.Loop() {
		fr := NewFrameReader(bufio.NewReader(bytes.NewReader(frame)), 0)
		if _, _, err := fr.Next(); err != nil {
			b.Fatal(err)
		}
	}
}
