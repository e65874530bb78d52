package topology

import "strings"

// A bridge's flows come in parts that the policy computes separately, so that a change
// recomputes only the parts it affects (View.Apply says which): the bridge-wide flows
// (PartBridge), the classifiers of each DVR peer's MAC (PeerPart of the peer host), on
// br-int the members of each remote security group in each direction it is used
// (RemoteGroupPart, the same flows on every host that has it), and the flows of each
// network present on the host (the part is the network's ID).
const PartBridge = ""

// peerPrefix starts the name of a DVR peer's part (network IDs never contain a colon).
const peerPrefix = "dvr-peer:"

// PeerPart names the part holding the classifiers of DVR peer host's MAC.
func PeerPart(host string) string { return peerPrefix + host }

// PartPeer returns the DVR peer host whose part this is, if it is a peer's part.
func PartPeer(part string) (host string, ok bool) {
	if len(part) < len(peerPrefix) || part[:len(peerPrefix)] != peerPrefix {
		return "", false
	}
	return part[len(peerPrefix):], true
}

// remotePrefix starts the name of a remote group's part (group IDs have no colon).
const remotePrefix = "security-group:remote:"

// RemoteGroupPart names the part of a br-int holding the members' clause of group's
// conjunction in direction dir (DirectionIngress or DirectionEgress): a part of every host
// whose ports have a rule naming the group as remote in that direction, the same flows on
// each.
func RemoteGroupPart(dir, group string) string { return remotePrefix + dir + ":" + group }

// PartRemoteGroup returns the direction and group of a remote group's part, if it is one.
func PartRemoteGroup(part string) (dir, group string, ok bool) {
	rest, ok := strings.CutPrefix(part, remotePrefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ":")
}
