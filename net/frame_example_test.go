package net_test

import (
	"encoding/hex"
	"fmt"

	lnet "librecord/net"
)

// The client hello of crypto/testdata/good_client_hello (67 bytes) and the
// sealed envelope of good_sealed_client_to_server (201 bytes), as frames.
// docs/protocol.md shows this output.
func ExampleAppendFrame() {
	hello, _ := hex.DecodeString("4801430056557f4a55e2f912c6044be42b1427004829c27a5547c3e04465d6f06866136a5248e280af9b8a3c074407eca9a29bf46e1659bac59cdeaea507ccbe35f7b0")
	fmt.Print(string(lnet.AppendFrame(nil, hello)))
	sealed, _ := hex.DecodeString("530114616cce284d0eb2e9dd6f177e28d68378377b525757b494427f89014f97d79928f3938d14eb51e2a4ffbdc82935c714210ef996bf3e12ce2b48031fc08c18966e5532ae1a701953c963c7db0088fdbe10223517ccb7d48f0745362861a45f901979588178bb2750d6a9ff463be0525f59cb2d8d220dee12cc4bbddde7bb3f57600602bb788303f38a66c2e76351107defbd164872118c1f7c17aa4bbe34faf7176f48d6d7f9589c5af68875a46c5c64bccb23ef7c39457631cb1bd52f65dec73e2683353a5a8c")
	fmt.Print(string(lnet.AppendFrame(nil, sealed)))
	// Output:
	// MESS1//SAFDAFZVf0pV4vkSxgRL5CsUJwBIKcJ6VUfD4ERl1vBoZhNqUkjigK-bijwHRAfsqaKb9G4WWbrFnN6upQfMvjX3sA\\MESS1
	// (ENDMESS)
	// MESS1//UwEUYWzOKE0Osundbxd-KNaDeDd7UldXtJRCf4kBT5fXmSjzk40U61HipP-9yCk1xxQhDvmWvz4SzitIAx_AjBiWblUyrhpwGVPJY8fbAIj9vhAiNRfMt9SPB0U2KGGkX5AZeViBeLsnUNap_0Y74FJfWcstjSIN7hLMS73d57s_V2AGArt4gwPzimbC52NREH3vvRZIchGMH3wXqku-NPr3F29I1tf5WJxa9oh1pGxcZLzLI-98OUV2Mcsb1S9l\\MESS1
	// MESS2//3sc-JoM1OlqM\\MESS2
	// (ENDMESS)
}
