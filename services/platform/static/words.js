// What each enumeration's value is called, on every page: one list, so that the home finder, the
// provider workspace and the dashboard call a placement type, a need or a rating the same.
export const PLACEMENT_TYPES = {
  childrens_home: "Children’s home",
  residential_special_school: "Residential special school",
  secure_childrens_home: "Secure children’s home",
  foster_care_in_house: "Foster care (in-house)",
  foster_care_ifa: "Foster care (independent agency)",
  parent_and_child: "Parent and child",
  supported_accommodation: "Supported accommodation",
  supported_lodgings: "Supported lodgings",
  short_breaks: "Short breaks",
};

export const NEEDS = {
  semh: "Social, emotional and mental health",
  autism: "Autism",
  learning_disability: "Learning disability",
  physical_disability: "Physical disability",
  complex_health: "Complex health needs",
  cse_risk: "Risk of child sexual exploitation",
  cce_risk: "Risk of child criminal exploitation",
  missing_episodes: "Missing episodes",
  self_harm: "Self-harm",
  substance_misuse: "Substance misuse",
  youth_justice: "Youth justice",
  uasc: "Unaccompanied asylum-seeking child",
  sibling_group: "Sibling group",
  parent_and_child: "Parent and child",
  solo_placement: "Solo placement",
  emergency: "Emergency placement",
};

export const RATINGS = {
  outstanding: "Outstanding",
  good: "Good",
  requires_improvement: "Requires improvement",
  inadequate: "Inadequate",
  not_yet_inspected: "Not yet inspected",
};

export const SEXES = { female: "Female", male: "Male", other: "Other" };

// `words` without the values named: a form that offers only some of them.
export function without(words, ...values) {
  return Object.fromEntries(Object.entries(words).filter(([value]) => !values.includes(value)));
}
