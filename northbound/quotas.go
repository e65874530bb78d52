package northbound

import (
	"net/http"
	"strings"

	"github.com/dvrflow/dvrflow/db"
	"github.com/labstack/echo/v4"
)

// Quotas (Neutron's quotas and quota_details extensions, neutron/extensions/quotasv2.py
// and quotasv2_detail.py): an admin lists, sets and resets any project's limits; a
// project reads its own. The store refuses a create past a limit (OverQuota).

// quotaPolicy refuses, as Neutron's get_quota policy (admin only), a project's caller
// asking about another project.
func quotaPolicy(c echo.Context, project string) error {
	cl := callerOf(c)
	if cl.admin || project == cl.project {
		return nil
	}
	return forbidden("rule:get_quota is disallowed by policy")
}

func limitsShape(limits map[string]int64) map[string]any {
	out := make(map[string]any, len(limits)+2)
	for k, v := range limits {
		out[k] = v
	}
	return out
}

// listQuotas answers GET /v2.0/quotas: the limits of every project that has limits of
// its own (admin only).
func (s *Server) listQuotas(c echo.Context) error {
	if !callerOf(c).admin {
		return forbidden("rule:get_quota is disallowed by policy")
	}
	qs, err := s.store.ListQuotas(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]any, 0, len(qs))
	for _, q := range qs {
		m := limitsShape(q.Limits)
		m["project_id"], m["tenant_id"] = q.ProjectID, q.ProjectID
		out = append(out, m)
	}
	return c.JSON(http.StatusOK, map[string]any{"quotas": out})
}

// quotaProject answers GET /v2.0/quotas/project and /v2.0/quotas/tenant: the caller's
// project.
func (s *Server) quotaProject(c echo.Context) error {
	key := strings.TrimPrefix(c.Path(), "/v2.0/quotas/") // project or tenant
	return c.JSON(http.StatusOK, map[string]any{key: map[string]any{key + "_id": callerOf(c).project}})
}

// showQuotas answers GET /v2.0/quotas/{project_id}.
func (s *Server) showQuotas(c echo.Context) error {
	project := c.Param("id")
	if err := quotaPolicy(c, project); err != nil {
		return err
	}
	limits, err := s.store.Quotas(c.Request().Context(), project)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"quota": limitsShape(limits)})
}

// showDefaultQuotas answers GET /v2.0/quotas/{project_id}/default.
func (s *Server) showDefaultQuotas(c echo.Context) error {
	if err := quotaPolicy(c, c.Param("id")); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"quota": limitsShape(s.store.DefaultQuotas())})
}

// showQuotaDetails answers GET /v2.0/quotas/{project_id}/details (also with tempest's
// .json suffix): each resource's limit, use and reservations (never any).
func (s *Server) showQuotaDetails(c echo.Context) error {
	project := c.Param("id")
	if err := quotaPolicy(c, project); err != nil {
		return err
	}
	ds, err := s.store.QuotaDetails(c.Request().Context(), project)
	if err != nil {
		return err
	}
	out := make(map[string]any, len(ds))
	for k, d := range ds {
		out[k] = map[string]any{"limit": d.Limit, "used": d.Used, "reserved": d.Reserved}
	}
	return c.JSON(http.StatusOK, map[string]any{"quota": out})
}

// quotaFlags are what an update may give besides limits: force (the default, kept for
// the CLI's --force) and check_limit (refuse a limit below the usage).
var quotaFlags = []string{"force", "check_limit"}

// updateQuotas answers PUT /v2.0/quotas/{project_id} (admin only): each given limit is
// an integer from -1 (unlimited) to 2147483647, as Neutron's attribute map has it.
func (s *Server) updateQuotas(c echo.Context) error {
	if !callerOf(c).admin {
		return forbidden("rule:update_quota is disallowed by policy")
	}
	allowed := append([]string{}, quotaFlags...)
	for _, r := range db.QuotaResources {
		allowed = append(allowed, r.Name)
	}
	b, err := readBody(c, "quota", allowed, nil)
	if err != nil {
		return err
	}
	checkLimit, err := b.boolean("check_limit")
	if err != nil {
		return err
	}
	if _, err := b.boolean("force"); err != nil {
		return err
	}
	limits := map[string]int64{}
	for _, r := range db.QuotaResources {
		raw, ok := b.fields[r.Name]
		if !ok {
			continue
		}
		v, err := intOf(raw)
		if err != nil {
			return invalidInput("%s is not an integer.", quoteInput(raw))
		}
		switch {
		case v < -1:
			return badBody("Invalid input for %s. Reason: '%d' is too small - must be at least '-1'.", r.Name, v)
		case v > db.MaxQuota:
			return badBody("Invalid input for %s. Reason: '%d' is too large - must be no larger than '%d'.", r.Name, v, db.MaxQuota)
		}
		limits[r.Name] = v
	}
	out, err := s.store.SetQuotas(c.Request().Context(), c.Param("id"), limits, checkLimit != nil && *checkLimit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"quota": limitsShape(out)})
}

// quoteInput shows a JSON value as Python shows what it decoded: a string bare, in quotes.
func quoteInput(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if strings.HasPrefix(s, `"`) && strings.HasSuffix(s, `"`) && len(s) >= 2 {
		return "'" + s[1:len(s)-1] + "'"
	}
	return "'" + s + "'"
}

// deleteQuotas answers DELETE /v2.0/quotas/{project_id} (admin only): the project's
// limits go back to the defaults (TenantQuotaNotFound when it had none of its own).
func (s *Server) deleteQuotas(c echo.Context) error {
	if !callerOf(c).admin {
		return forbidden("rule:delete_quota is disallowed by policy")
	}
	if err := s.store.DeleteQuotas(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
