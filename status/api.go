package status

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/switchapi"
)

// neutronError writes {"NeutronError": {"type", "message", "detail"}} as the API does.
func neutronError(c echo.Context, code int, typ, msg string) error {
	return c.JSON(code, map[string]any{"NeutronError": map[string]string{"type": typ, "message": msg, "detail": ""}})
}

// switchOf resolves the :dpid parameter to a connected switch, or writes the error.
func (s *Server) switchOf(c echo.Context) (uint64, switchapi.Switch, bool, error) {
	d, err := ofproto.ParseDPID(c.Param("dpid"))
	if err != nil {
		return 0, switchapi.Switch{}, false, neutronError(c, http.StatusBadRequest, "HTTPBadRequest", err.Error())
	}
	dpid := uint64(d)
	w, _, ok := s.lookup(dpid)
	if !ok {
		return 0, switchapi.Switch{}, false, neutronError(c, http.StatusNotFound, "DVRSwitchNotFound",
			"DVR switch "+d.String()+" could not be found (not connected)")
	}
	return dpid, w, true, nil
}

func (s *Server) listSwitches(c echo.Context) error {
	return c.JSON(http.StatusOK, switchapi.List{Switches: s.switches()})
}

func (s *Server) showSwitch(c echo.Context) error {
	_, w, ok, err := s.switchOf(c)
	if !ok {
		return err
	}
	return c.JSON(http.StatusOK, switchapi.Show{Switch: w})
}

func (s *Server) showFlows(c echo.Context) error {
	format := c.QueryParam("format")
	if format != "" && format != "json" && format != "text" {
		return neutronError(c, http.StatusBadRequest, "HTTPBadRequest", "format must be json or text, not "+format)
	}
	dpid, w, ok, err := s.switchOf(c)
	if !ok {
		return err
	}
	fl, err := s.flows(c.Request().Context(), dpid, w)
	switch {
	case errors.Is(err, errNoReconciler):
		return neutronError(c, http.StatusConflict, "DVRSwitchUnmanaged", "DVR switch "+w.DPID+": "+err.Error())
	case errors.Is(err, controller.ErrNotConnected):
		return neutronError(c, http.StatusNotFound, "DVRSwitchNotFound", "DVR switch "+w.DPID+" disconnected")
	case err != nil:
		s.log.Warn("auditing flows", zap.String("dpid", w.DPID), zap.String("host", w.Host),
			zap.String("bridge", w.Bridge), zap.Error(err))
		return neutronError(c, http.StatusServiceUnavailable, "DVRSwitchUnavailable", err.Error())
	}
	if format == "text" {
		var sb strings.Builder
		for _, f := range fl.Flows {
			switch f.State {
			case switchapi.StateMissing:
				sb.WriteString("MISSING ")
			case switchapi.StateExtra:
				sb.WriteString("EXTRA ")
			}
			sb.WriteString(f.Text)
			sb.WriteByte('\n')
		}
		return c.String(http.StatusOK, sb.String())
	}
	return c.JSON(http.StatusOK, fl)
}
