package northbound

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// listParams are the query parameters that are not filters.
var listParams = map[string]bool{"fields": true, "sort_key": true, "sort_dir": true, "limit": true, "marker": true, "page_reverse": true}

// respondList applies Neutron's list semantics to items and writes
// {"<collection>": [...], "<collection>_links": [...]}: filters (?attr=value, repeated =
// any of), sort_key/sort_dir, limit/marker pagination and fields= selection.
func respondList(c echo.Context, collection string, items []map[string]any) error {
	q := c.QueryParams()
	var known map[string]any
	if len(items) > 0 {
		known = items[0]
	}
	for key, vals := range q {
		if listParams[key] {
			continue
		}
		if _, ok := known[key]; !ok && len(items) > 0 {
			return badBody("%s is invalid attribute for filtering", key)
		}
		out := items[:0:0]
		for _, it := range items {
			if matchesAny(it[key], vals) {
				out = append(out, it)
			}
		}
		items = out
	}
	keys, dirs := q["sort_key"], q["sort_dir"]
	if len(dirs) > len(keys) {
		return badBody("The number of sort_keys and sort_dirs must be same")
	}
	for i, d := range dirs {
		if d != "asc" && d != "desc" {
			return badBody("Sort direction '%s' is not valid, use asc or desc", dirs[i])
		}
	}
	for _, k := range keys {
		if _, ok := known[k]; !ok && len(items) > 0 {
			return badBody("%s is invalid attribute for sort_key", k)
		}
	}
	if len(keys) > 0 {
		sort.SliceStable(items, func(i, j int) bool {
			for n, k := range keys {
				c := compare(items[i][k], items[j][k])
				if c == 0 {
					continue
				}
				if n < len(dirs) && dirs[n] == "desc" {
					return c > 0
				}
				return c < 0
			}
			return false
		})
	}
	if pr := q.Get("page_reverse"); pr != "" && !strings.EqualFold(pr, "false") {
		return badBody("page_reverse is not supported")
	}
	var links []any
	if m := q.Get("marker"); m != "" {
		at := -1
		for i, it := range items {
			if it["id"] == m {
				at = i
				break
			}
		}
		if at < 0 {
			return badBody("Marker %s not found in %s", m, collection)
		}
		items = items[at+1:]
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return badBody("Limit must be a non-negative integer, not '%s'", l)
		}
		if n > 0 && len(items) > n {
			items = items[:n]
			next := url.Values{}
			for k, v := range q {
				if k != "marker" {
					next[k] = v
				}
			}
			next.Set("marker", fmt.Sprint(items[n-1]["id"]))
			links = append(links, map[string]any{"rel": "next",
				"href": baseURL(c) + c.Request().URL.Path + "?" + next.Encode()})
		}
	}
	if fields := q["fields"]; len(fields) > 0 {
		for i, it := range items {
			sel := make(map[string]any, len(fields))
			for _, f := range fields {
				if v, ok := it[f]; ok {
					sel[f] = v
				}
			}
			items[i] = sel
		}
	}
	resp := map[string]any{collection: items}
	if links != nil {
		resp[collection+"_links"] = links
	}
	return c.JSON(http.StatusOK, resp)
}

// matchesAny reports whether attribute value v matches one of the filter values. List
// attributes match when an element matches; for lists of objects (fixed_ips) a filter
// value "key=value" matches an element's key.
func matchesAny(v any, vals []string) bool {
	for _, want := range vals {
		if matches(v, want) {
			return true
		}
	}
	return false
}

func matches(v any, want string) bool {
	switch x := v.(type) {
	case nil:
		return want == "" || strings.EqualFold(want, "none") || strings.EqualFold(want, "null")
	case string:
		return x == want
	case bool:
		b, err := strconv.ParseBool(strings.ToLower(want))
		return err == nil && b == x
	case []string:
		for _, e := range x {
			if e == want {
				return true
			}
		}
		return false
	case []any:
		k, val, isKV := strings.Cut(want, "=")
		for _, e := range x {
			if m, ok := e.(map[string]any); ok && isKV {
				if fmt.Sprint(m[k]) == val {
					return true
				}
			} else if fmt.Sprint(e) == want {
				return true
			}
		}
		return false
	default:
		return fmt.Sprint(x) == want
	}
}

func compare(a, b any) int {
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		return strings.Compare(x, y)
	case bool:
		y, _ := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case int, int64:
		fx, _ := strconv.ParseFloat(fmt.Sprint(x), 64)
		fy, _ := strconv.ParseFloat(fmt.Sprint(b), 64)
		switch {
		case fx < fy:
			return -1
		case fx > fy:
			return 1
		}
		return 0
	case nil:
		if b == nil {
			return 0
		}
		return -1
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}
