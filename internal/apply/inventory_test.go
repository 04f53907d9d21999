package apply

import (
	"testing"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime/schema"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func entry(group, kind, ns, name, version string) ssa.ChangeSetEntry {
	return ssa.ChangeSetEntry{
		ObjMetadata:  object.ObjMetadata{GroupKind: schema.GroupKind{Group: group, Kind: kind}, Namespace: ns, Name: name},
		GroupVersion: version,
		Action:       ssa.CreatedAction,
	}
}

func TestNewInventory(t *testing.T) {
	tests := []struct {
		name string
		cs   *ssa.ChangeSet
		want []stagesetv1.ResourceRef
	}{
		{name: "nil change set", cs: nil, want: []stagesetv1.ResourceRef{}},
		{
			name: "sorted by id, kustomize-controller format",
			cs: &ssa.ChangeSet{Entries: []ssa.ChangeSetEntry{
				entry("apps", "Deployment", "shop", "web", "v1"),
				entry("", "Namespace", "", "shop", "v1"),
				entry("", "ConfigMap", "shop", "cfg", "v1"),
			}},
			want: []stagesetv1.ResourceRef{
				{ID: "_shop__Namespace", Version: "v1"},
				{ID: "shop_cfg__ConfigMap", Version: "v1"},
				{ID: "shop_web_apps_Deployment", Version: "v1"},
			},
		},
		{
			name: "duplicates once, group/version reduced to the version",
			cs: &ssa.ChangeSet{Entries: []ssa.ChangeSetEntry{
				entry("apps", "Deployment", "shop", "web", "apps/v1"),
				entry("apps", "Deployment", "shop", "web", "v1"),
			}},
			want: []stagesetv1.ResourceRef{{ID: "shop_web_apps_Deployment", Version: "v1"}},
		},
		{
			name: "RBAC names with colons",
			cs:   &ssa.ChangeSet{Entries: []ssa.ChangeSetEntry{entry("rbac.authorization.k8s.io", "ClusterRole", "", "system:view", "v1")}},
			want: []stagesetv1.ResourceRef{{ID: "_system__view_rbac.authorization.k8s.io_ClusterRole", Version: "v1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(NewInventory(tt.cs).Entries).To(Equal(tt.want))
		})
	}
}

func TestInventoryRoundTrip(t *testing.T) {
	g := NewWithT(t)
	inv := NewInventory(&ssa.ChangeSet{Entries: []ssa.ChangeSetEntry{
		entry("apps", "Deployment", "shop", "web", "v1"),
		entry("", "Namespace", "", "shop", "v1"),
		entry("rbac.authorization.k8s.io", "ClusterRole", "", "system:view", "v1"),
	}})

	objects, err := InventoryObjects(inv)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(objects).To(HaveLen(3))
	g.Expect(objects[0].GetAPIVersion()).To(Equal("v1"))
	g.Expect(objects[0].GetKind()).To(Equal("Namespace"))
	g.Expect(objects[0].GetName()).To(Equal("shop"))
	g.Expect(objects[1].GetName()).To(Equal("system:view"))
	g.Expect(objects[2].GetAPIVersion()).To(Equal("apps/v1"))
	g.Expect(objects[2].GetNamespace()).To(Equal("shop"))

	set, err := InventoryMetadata(inv)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(set).To(Equal(object.UnstructuredSetToObjMetadataSet(objects)))

	cs := ssa.NewChangeSet()
	for _, o := range objects {
		cs.Add(ssa.ChangeSetEntry{ObjMetadata: object.UnstructuredToObjMetadata(o), GroupVersion: o.GroupVersionKind().Version})
	}
	g.Expect(NewInventory(cs)).To(Equal(inv))
}

func TestInventory_InvalidEntry(t *testing.T) {
	g := NewWithT(t)
	inv := &stagesetv1.ResourceInventory{Entries: []stagesetv1.ResourceRef{{ID: "not-an-id", Version: "v1"}}}
	_, err := InventoryObjects(inv)
	g.Expect(err).To(MatchError(ContainSubstring(`invalid inventory entry "not-an-id"`)))
	_, err = InventoryMetadata(inv)
	g.Expect(err).To(HaveOccurred())
	_, err = Stale(inv, nil)
	g.Expect(err).To(HaveOccurred())
}

func TestStale(t *testing.T) {
	inv := func(refs ...stagesetv1.ResourceRef) *stagesetv1.ResourceInventory {
		return &stagesetv1.ResourceInventory{Entries: refs}
	}
	web := stagesetv1.ResourceRef{ID: "shop_web_apps_Deployment", Version: "v1"}
	cfg := stagesetv1.ResourceRef{ID: "shop_cfg__ConfigMap", Version: "v1"}
	hpaV1 := stagesetv1.ResourceRef{ID: "shop_web_autoscaling_HorizontalPodAutoscaler", Version: "v1"}
	hpaV2 := stagesetv1.ResourceRef{ID: "shop_web_autoscaling_HorizontalPodAutoscaler", Version: "v2"}

	tests := []struct {
		name     string
		old, new *stagesetv1.ResourceInventory
		want     []string
	}{
		{name: "nothing recorded", old: nil, new: inv(web), want: nil},
		{name: "everything left", old: inv(web, cfg), new: nil, want: []string{"web", "cfg"}},
		{name: "one left", old: inv(web, cfg), new: inv(web), want: []string{"cfg"}},
		{name: "version change is not stale", old: inv(hpaV1), new: inv(hpaV2), want: nil},
		{name: "nothing left", old: inv(web), new: inv(web, cfg), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			stale, err := Stale(tt.old, tt.new)
			g.Expect(err).NotTo(HaveOccurred())
			var names []string
			for _, o := range stale {
				names = append(names, o.GetName())
			}
			g.Expect(names).To(Equal(tt.want))
		})
	}
}
