//! The memory store's jobs by id: a hash table of boxed jobs, keyed by the
//! id inside each job.
//!
//! A `HashMap<JobId, Box<Job>>` holds the id twice (a second 16-byte
//! handle beside the box) and its buckets are 24 bytes; this table's are
//! the 8-byte box alone. A million jobs take 2,097,152 buckets either way,
//! so that is 50 MB against 17 MB: 33 bytes a job.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use crate::id::JobId;
use crate::job::Job;

#[derive(Debug, Default)]
pub(super) struct JobTable {
    table: HashTable<Box<Job>>,
    hasher: foldhash::fast::RandomState,
}

impl JobTable {
    fn hash(&self, id: &JobId) -> u64 {
        self.hasher.hash_one(id)
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn get(&self, id: &JobId) -> Option<&Job> {
        self.table.find(self.hash(id), |j| j.id == *id).map(|j| &**j)
    }

    pub(super) fn get_mut(&mut self, id: &JobId) -> Option<&mut Job> {
        let hash = self.hash(id);
        self.table.find_mut(hash, |j| j.id == *id).map(|j| &mut **j)
    }

    pub(super) fn contains_key(&self, id: &JobId) -> bool {
        self.get(id).is_some()
    }

    /// Stores `job`, replacing (and returning) the job of its id.
    pub(super) fn insert(&mut self, job: Box<Job>) -> Option<Box<Job>> {
        match self.entry(&job.id.clone()) {
            Entry::Occupied(mut slot) => Some(std::mem::replace(slot.get_mut(), job)),
            Entry::Vacant(slot) => {
                slot.insert(job);
                None
            }
        }
    }

    /// The slot of `id`, hashed once for a look and an insert.
    pub(super) fn entry(&mut self, id: &JobId) -> Entry<'_, Box<Job>> {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(id);
        self.table.entry(hash, |j| j.id == *id, |j| hasher.hash_one(&j.id))
    }

    pub(super) fn remove(&mut self, id: &JobId) -> Option<Box<Job>> {
        let hash = self.hash(id);
        self.table.find_entry(hash, |j| j.id == *id).ok().map(|slot| slot.remove().0)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Job> {
        self.table.iter().map(|j| &**j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::Trigger;

    fn job(id: &str, task: &str) -> Box<Job> {
        Box::new(Job::new(id, task, Trigger::every("1m").unwrap()).unwrap())
    }

    #[test]
    fn a_job_is_found_replaced_and_removed_by_its_id() {
        let mut table = JobTable::default();
        for i in 0..1000 {
            assert!(table.insert(job(&format!("j{i}"), "a")).is_none());
        }
        assert_eq!(table.len(), 1000);
        let id = JobId::new("j7").unwrap();
        assert_eq!(&*table.get(&id).unwrap().task, "a");
        assert_eq!(&*table.insert(job("j7", "b")).unwrap().task, "a");
        assert_eq!(&*table.get(&id).unwrap().task, "b");
        table.get_mut(&id).unwrap().name = Some("seven".into());
        assert_eq!(table.get(&id).unwrap().name(), "seven");
        assert_eq!(table.len(), 1000);
        assert_eq!(table.remove(&id).unwrap().name(), "seven");
        assert!(!table.contains_key(&id) && table.remove(&id).is_none());
        assert_eq!(table.values().count(), 999);
        assert!(table.values().all(|j| table.get(&j.id).is_some_and(|k| std::ptr::eq(j, k))));
    }
}
