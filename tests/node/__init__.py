"""The node tier: the operator's image built here, the chart installed by helm, the operator as Pods."""
