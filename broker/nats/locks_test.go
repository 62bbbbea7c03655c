package nats

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A topic's lock is held by one at a time; a waiter gives up when its
// context ends; entries go once no one holds or awaits them.
func TestTopicLocks(t *testing.T) {
	var l topicLocks
	unlock, err := l.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := l.lock(context.Background(), "b") // another topic: free
	if err != nil {
		t.Fatal(err)
	}
	other()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.lock(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a held lock taken: %v", err)
	}
	got := make(chan func())
	go func() {
		u, err := l.lock(context.Background(), "a")
		if err != nil {
			panic(err)
		}
		got <- u
	}()
	unlock()
	(<-got)()
	if len(l.m) != 0 {
		t.Fatalf("%d entries left", len(l.m))
	}
}
