package repl

import "librecord/crypto"

// Item is one message the user typed, kept until the server acks it.
type Item struct {
	Line  int // input line number (scripted use) or typing order
	CID   string
	Salon string
	Text  string
	mark  Mark // the pending line on screen, if any
	// settled: it left the outbox once (acked or refused); it may come
	// back to be sent again after a new login.
	settled bool
}

// Outbox keeps typed messages in order until each is acked, so that a
// lost connection loses nothing and a retry reuses the message's cid
// (PROTOCOL.md 3.2 and 5). It is not safe for concurrent use: the REPL's
// loop owns it.
type Outbox struct {
	items []*Item
	count int
}

// NewCID returns a fresh client message id: 128 random bits in base64url,
// 22 printable ASCII characters (crypto.NewID).
func NewCID() string { return crypto.NewID() }

// Add queues text for salon under a fresh cid and returns it.
func (o *Outbox) Add(salon, text string) *Item {
	o.count++
	it := &Item{Line: o.count, CID: NewCID(), Salon: salon, Text: text}
	o.items = append(o.items, it)
	return it
}

// AddLine queues text as input line n (scripted use numbers lines itself).
func (o *Outbox) AddLine(n int, salon, text string) *Item {
	it := o.Add(salon, text)
	it.Line = n
	return it
}

// Head returns the oldest unacked message, or nil.
func (o *Outbox) Head() *Item {
	if len(o.items) == 0 {
		return nil
	}
	return o.items[0]
}

// Remove drops it (acked, or refused for good) from the outbox.
func (o *Outbox) Remove(it *Item) {
	for i, x := range o.items {
		if x == it {
			o.items = append(o.items[:i], o.items[i+1:]...)
			return
		}
	}
}

// Requeue puts items back at the head of the outbox, in the order given,
// before the messages waiting: they were typed first.
func (o *Outbox) Requeue(items []*Item) {
	o.items = append(append([]*Item(nil), items...), o.items...)
}

// Len is how many messages wait.
func (o *Outbox) Len() int { return len(o.items) }

// Items returns the waiting messages, oldest first.
func (o *Outbox) Items() []*Item { return append([]*Item(nil), o.items...) }
