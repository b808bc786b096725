package kmsapi

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
)

// Pages that answer early wait for their turn: the visitor sees the pages
// one at a time in the API's order, each key once, however they arrive.
func TestVisitKeysInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const total = 4500
		release := make(chan struct{})
		srv, _, _ := pagingServer(t, total, func(offset, limit int) (int, int) {
			if offset == 1000 {
				<-release
			}
			return min(limit, total-offset), total
		})
		c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
		var visited []string // the first key of each page
		next := 0
		done := make(chan error)
		go func() {
			done <- c.VisitKeys(context.Background(), func(page []Key) error {
				visited = append(visited, page[0].ID)
				for _, k := range page {
					if want := fmt.Sprintf("key-%06d", next); k.ID != want {
						return fmt.Errorf("key %s, want %s", k.ID, want)
					}
					next++
				}
				return nil
			})
		}()
		synctest.Wait() // every page but the second answered and decoded
		if len(visited) != 1 {
			t.Errorf("visited %v before the second page answered, want the first only", visited)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want := []string{"key-000000", "key-001000", "key-002000", "key-003000", "key-004000"}
		if fmt.Sprint(visited) != fmt.Sprint(want) || next != total {
			t.Errorf("visited pages %v and %d keys, want %v and %d", visited, next, want, total)
		}
	})
}

// An error of the visitor ends the listing with that error.
func TestVisitKeysStopsAtVisitorError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, _, _ := pagingServer(t, 5000, nil)
		c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
		boom := errors.New("boom")
		pages := 0
		err := c.VisitKeys(context.Background(), func([]Key) error {
			if pages++; pages == 2 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || pages != 2 {
			t.Errorf("%d pages visited, error %v; want 2 and boom", pages, err)
		}
	})
}
