//! The in-memory allocator: label set → numeric identity, with reference counts.

use std::collections::BTreeMap;

use policy::labels::Labels;

use crate::error::IdentityError;
use crate::reserved::{self, LOCAL_MAX, LOCAL_MIN, MAX_ALLOCATED, MIN_ALLOCATED};

/// Which numbers an allocator hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Endpoint label sets: [`MIN_ALLOCATED`]..=[`MAX_ALLOCATED`]. Reserved label
    /// sets map to their fixed identities.
    Global,
    /// CIDR identities of this node: [`LOCAL_MIN`]..=[`LOCAL_MAX`]. Their labels
    /// include `reserved:world` next to `cidr:` labels.
    Local,
}

impl Scope {
    pub fn range(self) -> (u32, u32) {
        match self {
            Scope::Global => (MIN_ALLOCATED, MAX_ALLOCATED),
            Scope::Local => (LOCAL_MIN, LOCAL_MAX),
        }
    }
}

/// A numeric security identity and the label set it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: u32,
    pub labels: Labels,
}

/// An allocated (non-reserved) identity and how many holders it has.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) identity: Identity,
    pub(crate) refcount: u32,
}

/// Hands out one numeric identity per distinct label set and frees it when the last
/// holder releases it. Pure: persistence lives in `store`.
#[derive(Debug, Clone)]
pub struct IdentityAllocator {
    reserved: Vec<Identity>,
    allocated: BTreeMap<u32, Slot>,
    by_labels: BTreeMap<Labels, u32>,
    /// Where the search for a free number starts. Advancing it past every allocation
    /// (instead of always taking the lowest free number) keeps a just-freed id from being
    /// handed straight to a different label set while stale references may still exist.
    next_id: u32,
    scope: Scope,
}

impl Default for IdentityAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl IdentityAllocator {
    /// An allocator of cluster-wide identities, holding only the reserved ones.
    pub fn new() -> Self {
        Self::with_scope(Scope::Global)
    }

    /// An allocator of node-local (CIDR) identities.
    pub fn local() -> Self {
        Self::with_scope(Scope::Local)
    }

    pub fn with_scope(scope: Scope) -> Self {
        let reserved = reserved::all()
            .map(|(id, name)| Identity {
                id,
                labels: Labels::reserved(name),
            })
            .collect();
        IdentityAllocator {
            reserved,
            allocated: BTreeMap::new(),
            by_labels: BTreeMap::new(),
            next_id: scope.range().0,
            scope,
        }
    }

    /// Returns the identity for `labels`, creating it if needed (`true` = newly created).
    ///
    /// Every call on an allocated identity takes one reference; balance it with
    /// [`release`](Self::release). Reserved label sets (and the empty set, which maps to
    /// `reserved:init`) return their fixed identity and take no reference.
    pub fn allocate(&mut self, labels: &Labels) -> Result<(Identity, bool), IdentityError> {
        let reserved_id = match self.scope {
            Scope::Global => reserved::reserved_for(labels)?,
            Scope::Local => None,
        };
        if let Some(id) = reserved_id {
            let identity = self
                .get(id)
                .cloned()
                .expect("reserved table covers every id");
            return Ok((identity, false));
        }
        if let Some(&id) = self.by_labels.get(labels) {
            let slot = self
                .allocated
                .get_mut(&id)
                .expect("by_labels mirrors allocated");
            slot.refcount += 1;
            return Ok((slot.identity.clone(), false));
        }
        let (min, max) = self.scope.range();
        let id = self
            .find_free()
            .ok_or(IdentityError::Exhausted { min, max })?;
        let identity = Identity {
            id,
            labels: labels.clone(),
        };
        self.insert(identity.clone(), 1);
        self.next_id = if id == max { min } else { id + 1 };
        Ok((identity, true))
    }

    /// Drops one reference to `id`; returns `true` when that freed the identity.
    /// Releasing a reserved identity is a no-op (`false`).
    pub fn release(&mut self, id: u32) -> Result<bool, IdentityError> {
        if reserved::is_reserved(id) {
            return match self.get(id) {
                Some(_) => Ok(false),
                None => Err(IdentityError::UnknownIdentity(id)),
            };
        }
        let slot = self
            .allocated
            .get_mut(&id)
            .ok_or(IdentityError::UnknownIdentity(id))?;
        slot.refcount -= 1;
        if slot.refcount > 0 {
            return Ok(false);
        }
        let slot = self.allocated.remove(&id).expect("present above");
        self.by_labels.remove(&slot.identity.labels);
        Ok(true)
    }

    /// The identity numbered `id`, reserved or allocated.
    pub fn get(&self, id: u32) -> Option<&Identity> {
        if reserved::is_reserved(id) {
            return self.reserved.iter().find(|i| i.id == id);
        }
        self.allocated.get(&id).map(|slot| &slot.identity)
    }

    /// The identity `labels` currently maps to, without taking a reference or creating one.
    pub fn lookup(&self, labels: &Labels) -> Option<u32> {
        match reserved::reserved_for(labels) {
            Ok(Some(id)) => Some(id),
            Ok(None) => self.by_labels.get(labels).copied(),
            Err(_) => None,
        }
    }

    /// Every identity, reserved ones included, sorted by id.
    pub fn list(&self) -> Vec<Identity> {
        self.reserved
            .iter()
            .cloned()
            .chain(self.allocated.values().map(|slot| slot.identity.clone()))
            .collect()
    }

    /// The allocated (not reserved) identities, by id.
    pub fn allocated(&self) -> impl Iterator<Item = &Identity> {
        self.allocated.values().map(|slot| &slot.identity)
    }

    /// Id → labels for every identity, the view the policy resolver consumes.
    pub fn all_labels(&self) -> BTreeMap<u32, Labels> {
        self.list()
            .into_iter()
            .map(|identity| (identity.id, identity.labels))
            .collect()
    }

    /// How many references an allocated identity has; `None` for reserved and unknown ids.
    pub fn refcount(&self, id: u32) -> Option<u32> {
        self.allocated.get(&id).map(|slot| slot.refcount)
    }

    /// Allocated identities with their reference counts, in id order (for the store).
    pub(crate) fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.allocated.values()
    }

    pub(crate) fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Rebuilds an allocator from validated persisted parts.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    pub(crate) fn from_parts(slots: Vec<Slot>, next_id: u32, scope: Scope) -> Self {
        let mut allocator = Self::with_scope(scope);
        for slot in slots {
            allocator.insert(slot.identity, slot.refcount);
        }
        allocator.next_id = next_id;
        allocator
    }

    fn insert(&mut self, identity: Identity, refcount: u32) {
        self.by_labels.insert(identity.labels.clone(), identity.id);
        self.allocated
            .insert(identity.id, Slot { identity, refcount });
    }

    /// Lowest free number at or above `next_id`, wrapping around to `MIN_ALLOCATED`.
    fn find_free(&self) -> Option<u32> {
        let (min, max) = self.scope.range();
        self.first_gap(self.next_id, max)
            .or_else(|| self.first_gap(min, self.next_id.saturating_sub(1)))
    }

    /// First number in `lo..=hi` that is not allocated.
    fn first_gap(&self, lo: u32, hi: u32) -> Option<u32> {
        if lo > hi {
            return None;
        }
        let mut candidate = lo;
        for &id in self.allocated.range(lo..=hi).map(|(id, _)| id) {
            if id != candidate {
                break;
            }
            candidate += 1;
        }
        (candidate <= hi).then_some(candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reserved::{HEALTH, HOST, INIT, KUBE_APISERVER};

    fn labels(list: &[&str]) -> Labels {
        Labels::parse_all(list).expect("valid test labels")
    }

    #[test]
    fn same_labels_get_same_id() {
        let mut alloc = IdentityAllocator::new();
        let (web, created) = alloc.allocate(&labels(&["k8s:app=web"])).unwrap();
        assert!(created);
        assert_eq!(web.id, MIN_ALLOCATED);
        let (again, created) = alloc.allocate(&labels(&["k8s:app=web"])).unwrap();
        assert!(!created);
        assert_eq!(again, web);
        let (db, created) = alloc.allocate(&labels(&["k8s:app=db"])).unwrap();
        assert!(created);
        assert_eq!(db.id, MIN_ALLOCATED + 1);
        assert_eq!(alloc.lookup(&labels(&["k8s:app=db"])), Some(db.id));
        assert_eq!(alloc.get(db.id), Some(&db));
    }

    #[test]
    fn refcount_frees_at_zero() {
        let mut alloc = IdentityAllocator::new();
        let web = labels(&["k8s:app=web"]);
        let (identity, _) = alloc.allocate(&web).unwrap();
        alloc.allocate(&web).unwrap();
        assert_eq!(alloc.refcount(identity.id), Some(2));
        assert!(!alloc.release(identity.id).unwrap());
        assert_eq!(alloc.refcount(identity.id), Some(1));
        assert!(alloc.release(identity.id).unwrap());
        assert_eq!(alloc.refcount(identity.id), None);
        assert_eq!(alloc.get(identity.id), None);
        assert_eq!(alloc.lookup(&web), None);
        assert!(matches!(
            alloc.release(identity.id),
            Err(IdentityError::UnknownIdentity(id)) if id == identity.id
        ));
    }

    #[test]
    fn freed_id_is_not_reused_immediately() {
        let mut alloc = IdentityAllocator::new();
        let (a, _) = alloc.allocate(&labels(&["k8s:app=a"])).unwrap();
        let (b, _) = alloc.allocate(&labels(&["k8s:app=b"])).unwrap();
        alloc.release(a.id).unwrap();
        let (c, _) = alloc.allocate(&labels(&["k8s:app=c"])).unwrap();
        assert_eq!(c.id, b.id + 1, "must move past the last allocated id");
        // The same label set coming back after being freed gets a new number too.
        let (a2, created) = alloc.allocate(&labels(&["k8s:app=a"])).unwrap();
        assert!(created);
        assert_eq!(a2.id, c.id + 1);
    }

    #[test]
    fn wraps_around_to_lowest_free_and_reports_exhaustion() {
        let mut alloc = IdentityAllocator::new();
        let count = MAX_ALLOCATED - MIN_ALLOCATED + 1;
        for n in 0..count {
            alloc.allocate(&labels(&[&format!("k8s:n={n}")])).unwrap();
        }
        let err = alloc.allocate(&labels(&["k8s:one=too-many"])).unwrap_err();
        assert!(matches!(err, IdentityError::Exhausted { .. }));
        alloc.release(MIN_ALLOCATED + 10).unwrap();
        alloc.release(MIN_ALLOCATED + 3).unwrap();
        let (identity, _) = alloc.allocate(&labels(&["k8s:one=more"])).unwrap();
        assert_eq!(identity.id, MIN_ALLOCATED + 3);
        let (identity, _) = alloc.allocate(&labels(&["k8s:two=more"])).unwrap();
        assert_eq!(identity.id, MIN_ALLOCATED + 10);
    }

    #[test]
    fn reserved_label_sets_return_fixed_ids_without_refcount() {
        let mut alloc = IdentityAllocator::new();
        let (health, created) = alloc.allocate(&Labels::reserved("health")).unwrap();
        assert_eq!((health.id, created), (HEALTH, false));
        assert_eq!(health.labels, Labels::reserved("health"));
        assert_eq!(alloc.refcount(HEALTH), None);
        assert!(!alloc.release(HEALTH).unwrap());
        assert_eq!(alloc.get(HEALTH), Some(&health));
        assert_eq!(alloc.lookup(&Labels::reserved("host")), Some(HOST));
        assert!(matches!(
            alloc.release(100),
            Err(IdentityError::UnknownIdentity(100))
        ));
    }

    #[test]
    fn empty_label_set_is_init() {
        let mut alloc = IdentityAllocator::new();
        let (init, created) = alloc.allocate(&Labels::default()).unwrap();
        assert_eq!((init.id, created), (INIT, false));
        assert_eq!(init.labels, Labels::reserved("init"));
    }

    #[test]
    fn list_includes_reserved_sorted_by_id() {
        let mut alloc = IdentityAllocator::new();
        alloc.allocate(&labels(&["k8s:app=web"])).unwrap();
        let ids: Vec<u32> = alloc.list().iter().map(|i| i.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6, 7, 10, MIN_ALLOCATED]);
        let all = alloc.all_labels();
        assert_eq!(all[&KUBE_APISERVER], Labels::reserved("kube-apiserver"));
        assert_eq!(all[&MIN_ALLOCATED], labels(&["k8s:app=web"]));
    }

    #[test]
    fn local_scope_allocates_cidr_identities_above_bit_24() {
        let mut local = IdentityAllocator::local();
        let cidr = labels(&["cidr:10.0.0.0/8", "cidr:0.0.0.0/0", "reserved:world"]);
        let (identity, created) = local.allocate(&cidr).unwrap();
        assert!(created);
        assert_eq!(identity.id, LOCAL_MIN);
        assert_eq!(local.allocate(&cidr).unwrap().0.id, LOCAL_MIN);
        assert!(!local.release(LOCAL_MIN).unwrap());
        assert!(local.release(LOCAL_MIN).unwrap());
        // The global scope refuses such a label set.
        assert!(IdentityAllocator::new().allocate(&cidr).is_err());
    }
}
