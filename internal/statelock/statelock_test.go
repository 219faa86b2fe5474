package statelock

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOneHolderAtATime(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first, err := Acquire(ctx, dir, Holder{PID: 11, Version: "v1", Since: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if first.Previous != nil {
		t.Fatalf("previous holder of a fresh directory: %+v", first.Previous)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err = Acquire(done, dir, Holder{PID: 12})
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "pid 11") || !strings.Contains(err.Error(), "version v1") {
		t.Fatalf("second holder: %v, want ErrHeld naming pid 11, v1", err)
	}
	// A waiting successor gets it once the first lets go, and learns whom
	// it took over from.
	got := make(chan *Lock, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		l, err := Acquire(wctx, dir, Holder{PID: 13, Version: "v2"})
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-got:
		t.Fatal("acquired while held")
	default:
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	second := <-got
	if second == nil || second.Previous == nil || second.Previous.PID != 11 || second.Previous.Version != "v1" {
		t.Fatalf("successor: %+v", second)
	}
	second.Release()
	if err := second.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
}
