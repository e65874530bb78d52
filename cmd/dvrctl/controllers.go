package main

import (
	"context"
	"strconv"

	"github.com/dvrflow/dvrflow/switchapi"
)

// runControllers lists the dvrflowd registered against the database: whether each lease
// runs and for how long, how many hosts each masters, and where it listens.
func runControllers(ctx context.Context, c *cli, args []string) error {
	if _, err := c.parse("controllers", "", args, 0, 0, nil); err != nil {
		return err
	}
	var out switchapi.ControllerList
	raw, err := c.client().getInto(ctx, "/v2.0/dvr-controllers", nil, &out)
	if err != nil {
		return err
	}
	if c.json() {
		return writeJSON(c.stdout, raw)
	}
	var rows [][]string
	for _, ctl := range out.Controllers {
		lease := "expired"
		if ctl.Live {
			lease = strconv.FormatFloat(ctl.LeaseRemainingSeconds, 'f', 1, 64) + "s"
		}
		id := ctl.ID
		if ctl.Self {
			id += "*"
		}
		rows = append(rows, []string{id, yesNo(ctl.Live), lease, strconv.Itoa(len(ctl.Hosts)), ctl.OFAddr, ctl.APIURL})
	}
	return table(c.stdout, []string{"ID", "LIVE", "LEASE", "HOSTS", "OF_ADDRESS", "API"}, rows)
}
