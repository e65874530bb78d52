package topology

// A bridge's flows come in parts that the policy computes separately, so that a change
// recomputes only the parts it affects (View.Apply says which): the bridge-wide flows
// (PartBridge), the classifiers of each DVR peer's MAC (PeerPart of the peer host), and the
// flows of each network present on the host (the part is the network's ID).
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
