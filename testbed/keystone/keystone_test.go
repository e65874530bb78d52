package keystone_test

import (
	"context"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/testbed/keystone"
)

// TestStart sets a private Keystone up, gets tokens from it, and checks that Close leaves
// nothing running.
func TestStart(t *testing.T) {
	if why := keystone.Unavailable(); why != "" {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	ks, err := keystone.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keystone up at %s in %s", ks.URL, time.Since(t0).Round(100*time.Millisecond))
	defer ks.Close()
	adm, err := ks.Admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := adm.CreateProject(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateUser(ctx, "u1", "pw1", p, "member"); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Token(ctx, "u1", "pw1", "p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Token(ctx, "u1", "wrong", "p1"); err == nil {
		t.Fatal("a wrong password got a token")
	}
	ks.Stop()
	if _, err := ks.Token(ctx, "u1", "pw1", "p1"); err == nil {
		t.Fatal("a stopped Keystone answered")
	}
	if err := ks.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Token(ctx, "u1", "pw1", "p1"); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
