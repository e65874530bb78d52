package northbound

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

// Neutron's bulk create: POST /v2.0/<plural> with {"<plural>": [{...}, ...]} creates
// every item in one store write (all or nothing) and answers 201 with the created
// objects in order, {"<plural>": [...]}. Each item is checked as a single create's body
// is; a rejected item is named in the error message by its 0-based index ("Item 3: ...").

// maxBulkBody bounds the body of a bulk create (db.MaxBulk ports are about 2 MiB).
const maxBulkBody = 32 << 20

func tooLarge(format string, args ...any) error {
	return &apiError{http.StatusRequestEntityTooLarge, "HTTPRequestEntityTooLarge", fmt.Sprintf(format, args...)}
}

// readCreate reads a POST body holding one resource, {"<kind>": {...}}, or a list of
// them, {"<plural>": [...]}; bulk reports which. Attributes are checked as readBody
// does, item by item.
func readCreate(c echo.Context, kind, plural string, allowed, readOnly []string) (bodies []*body, bulk bool, err error) {
	raw, err := readRaw(c, maxBulkBody)
	if err != nil {
		return nil, false, err
	}
	var env map[string]json.RawMessage
	if len(raw) > maxBulkBody {
		return nil, false, tooLarge("Request is too large: the body is limited to %d bytes.", maxBulkBody)
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		if len(raw) > maxBody { // not a bulk create, and too large for one resource
			return nil, false, tooLarge("Request is too large: the body is limited to %d bytes.", maxBody)
		}
		return nil, false, badBody("Malformed request body: %v", err)
	}
	list, isBulk := env[plural]
	if !isBulk || len(env) != 1 {
		if len(raw) > maxBody {
			return nil, false, tooLarge("Request is too large: the body is limited to %d bytes.", maxBody)
		}
		b, err := parseOne(c, env, kind, allowed, readOnly)
		if err != nil {
			return nil, false, err
		}
		return []*body{b}, false, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(list, &items); err != nil {
		return nil, true, badBody("Malformed request body: '%s' must be a list of objects", plural)
	}
	if len(items) == 0 {
		return nil, true, badBody("Bulk create of %s needs at least one item", plural)
	}
	if len(items) > db.MaxBulk {
		return nil, true, tooLarge("Bulk create of %d %s exceeds the limit of %d per request", len(items), plural, db.MaxBulk)
	}
	bodies = make([]*body, len(items))
	for i, it := range items {
		if inner, ok := wrapped(it, kind); ok {
			it = inner
		}
		if bodies[i], err = parseFields(c, it, kind, allowed, readOnly); err != nil {
			return nil, true, itemErr(i, err)
		}
	}
	return bodies, true, nil
}

// wrapped returns the object of a bulk item written as a single create's body,
// {"<kind>": {...}}: Neutron takes each item either way (tempest's
// create_bulk_security_groups sends them wrapped).
func wrapped(item json.RawMessage, kind string) (json.RawMessage, bool) {
	var env map[string]json.RawMessage
	if json.Unmarshal(item, &env) != nil {
		return nil, false
	}
	inner, ok := env[kind]
	return inner, ok
}

// itemErr names the bulk item an error is about.
func itemErr(i int, err error) error {
	switch e := err.(type) {
	case *apiError:
		return &apiError{e.code, e.typ, fmt.Sprintf("Item %d: %s", i, e.message)}
	case *db.Error:
		return &db.Error{Class: e.Class, Type: e.Type, Message: fmt.Sprintf("Item %d: %s", i, e.Message)}
	}
	return fmt.Errorf("item %d: %w", i, err)
}

// respondMany writes {"<plural>": [shape, ...]}, honouring ?fields=.
func respondMany(c echo.Context, code int, plural string, shapes []map[string]any) error {
	if fields := c.QueryParams()["fields"]; len(fields) > 0 {
		for i, shape := range shapes {
			sel := make(map[string]any, len(fields))
			for _, f := range fields {
				if v, ok := shape[f]; ok {
					sel[f] = v
				}
			}
			shapes[i] = sel
		}
	}
	return c.JSON(code, map[string]any{plural: shapes})
}

// creation describes the POST of one resource type, single or bulk: its names, the
// attributes a body may hold, how one item is read and checked, the store's creates and
// the resource's answer shape.
type creation[S, T any] struct {
	kind, plural      string
	allowed, readOnly []string
	spec              func(*body) (S, error)
	one               func(context.Context, S) (*T, error)
	many              func(context.Context, []S) ([]T, error)
	shape             func(*T) map[string]any
}

// create serves the POST described by r: one item is created with r.one and answered
// {"<kind>": {...}}; a list with r.many in one write, answered {"<plural>": [...]}. An
// item that fails r.spec stops the request before the store is asked, named by its
// index when the body is a list.
func create[S, T any](c echo.Context, r creation[S, T]) error {
	bodies, bulk, err := readCreate(c, r.kind, r.plural, r.allowed, r.readOnly)
	if err != nil {
		return err
	}
	specs := make([]S, len(bodies))
	for i, b := range bodies {
		if specs[i], err = r.spec(b); err != nil {
			if bulk {
				return itemErr(i, err)
			}
			return err
		}
	}
	ctx := c.Request().Context()
	if !bulk {
		x, err := r.one(ctx, specs[0])
		if err != nil {
			return err
		}
		return respondOne(c, http.StatusCreated, r.kind, r.shape(x))
	}
	xs, err := r.many(ctx, specs)
	if err != nil {
		return err
	}
	shapes := make([]map[string]any, len(xs))
	for i := range xs {
		shapes[i] = r.shape(&xs[i])
	}
	return respondMany(c, http.StatusCreated, r.plural, shapes)
}

// networkCheck returns check(c, id) as a function of the network ID alone, asking once per
// network it found good: the items of a bulk create mostly share their network.
func networkCheck(c echo.Context, check func(echo.Context, string) (*topology.Network, error)) func(id string) (*topology.Network, error) {
	good := map[string]*topology.Network{}
	return func(id string) (*topology.Network, error) {
		if n, ok := good[id]; ok {
			return n, nil
		}
		n, err := check(c, id)
		if err != nil {
			return nil, err
		}
		good[id] = n
		return n, nil
	}
}
