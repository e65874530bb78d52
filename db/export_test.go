package db

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// HoldAllConns takes every connection of the store's main pool and returns a function that
// gives them back: a test of what must not wait for that pool.
func (s *Store) HoldAllConns(ctx context.Context) (func(), error) {
	var held []*pgxpool.Conn
	release := func() {
		for _, c := range held {
			c.Release()
		}
	}
	for range s.pool.Config().MaxConns {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			release()
			return nil, err
		}
		held = append(held, c)
	}
	return release, nil
}

// LeaseSetting returns a setting of a lease connection.
func (s *Store) LeaseSetting(ctx context.Context, name string) (string, error) {
	var v string
	err := s.Leases.pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v)
	return v, err
}
